"""Transitions other code can observe, as Django signals.

`status_changed` is sent after the transaction that made the change commits (never for a
change that was rolled back), with `sender` the model class (Video, Subtitle, ProcessingJob)
and keyword arguments `pk`, `video_id`, `field` ("status", or "playable" for a video), `old`
and `new`. Every status write of a video, a subtitle track or a job goes through
`transcoding.status`, which announces the changes here; metrics or a cache can connect to it:

    @receiver(status_changed, sender=Video)
    def on_video(sender, pk, video_id, field, old, new, **kwargs): ...

`status_changing` carries the same arguments but is sent at once, inside the transaction
that writes the change: a receiver that writes rows (the webhooks' events) commits or rolls
back with the change itself, so an outcome is never announced without happening nor happens
without being announced. Its receivers are not "robust": one that fails fails the transition.

`video_created` is sent the same way (inside the transaction) with `video_id` when a new
video's row is written (`ingest.create`); a creation is not a status change, so it is not
announced as one.
"""

from django.db import transaction
from django.dispatch import Signal

status_changed = Signal()
status_changing = Signal()
video_created = Signal()


def announce(model, pk: int, video_id: int, field: str, old, new) -> None:
    """Send `status_changing` now and `status_changed` once the current transaction commits,
    if the value changed. Call it inside the transaction that writes the change."""
    if old == new:
        return
    status_changing.send(sender=model, pk=pk, video_id=video_id, field=field, old=old, new=new)
    transaction.on_commit(
        lambda: status_changed.send(sender=model, pk=pk, video_id=video_id, field=field, old=old, new=new),
        robust=True,
    )


def announce_created(model, video_id: int) -> None:
    """Send `video_created` now: call it inside the transaction that saves the new video."""
    video_created.send(sender=model, video_id=video_id)
