"""Transitions other code can observe: a Django signal sent after the transaction that made
the change commits (never for a change that was rolled back).

`status_changed` is sent with `sender` the model class (Video, Subtitle, ProcessingJob) and
keyword arguments `pk`, `video_id`, `field` ("status", or "playable" for a video), `old` and
`new`. Every status write of a video, a subtitle track or a job goes through `transcoding.status`,
which announces the changes here; webhooks, metrics or a cache can connect to it:

    @receiver(status_changed, sender=Video)
    def on_video(sender, pk, video_id, field, old, new, **kwargs): ...
"""

from django.db import transaction
from django.dispatch import Signal

status_changed = Signal()


def announce(model, pk: int, video_id: int, field: str, old, new) -> None:
    """Send `status_changed` once the current transaction commits, if the value changed."""
    if old == new:
        return
    transaction.on_commit(
        lambda: status_changed.send(sender=model, pk=pk, video_id=video_id, field=field, old=old, new=new),
        robust=True,
    )
