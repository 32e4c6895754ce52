"""B8's videos, made through the product's own services in a process of their own (Django on the
site's database, configured by the environment B8 gives it); prints one JSON document.

    python -m bench.seed base PUBLIC_CLIP PRIVATE_CLIP     a viewer's API key, two videos
                                                           encoded for real by the local worker
                                                           and a copy of the first: 3 videos
    python -m bench.seed grow --like A,B --count N         N more published videos, copies of A
                        [--encode CLIP --encoding K]       and B's sources (linked to their
                                                           outputs, as the product dedupes them),
                                                           then K queued from CLIP, still encoding
                                                           while the viewers come
    python -m bench.seed state ID...                       status and progress of these videos
"""

import argparse
import json
import sys
import time


def _setup():
    import django

    django.setup()


def _video(clip: str, *, title: str, private: bool):
    from transcoding import services
    from transcoding.ingest.create import video_create
    from transcoding.models import Video

    video = video_create(source=clip, title=title, published=True)
    Video.objects.filter(pk=video.pk).update(private=private)
    video.refresh_from_db()
    services.video_request_processing(video)
    return video


def base(public_clip: str, private_clip: str, timeout: float) -> dict:
    from django.contrib.auth.models import User

    from transcoding.api.keys import api_key_create
    from transcoding.models import Video, VideoStatus

    user = User.objects.create_user("viewer", password=None)
    _, key = api_key_create(user=user, name="b8 viewer", scope="read")
    public = _video(public_clip, title="public", private=False)
    private = _video(private_clip, title="private", private=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = dict(Video.objects.filter(pk__in=[public.pk, private.pk]).values_list("pk", "status"))
        if all(state == VideoStatus.READY for state in states.values()):
            copy = grow([public.pk], 1, None, 0)["linked"]
            return {"public": public.pk, "private": private.pk, "key": key, "linked": copy}
        if VideoStatus.FAILED in states.values():
            raise SystemExit(f"b8: a seed video failed to encode: {states}")
        time.sleep(0.2)
    raise SystemExit(f"b8: the seed videos were not ready after {timeout:g} s")


def grow(like: list[int], count: int, encode: str | None, encoding: int) -> dict:
    from transcoding.models import Video

    ids = {"encoding": [], "linked": []}
    originals = Video.objects.in_bulk(like)
    for i in range(count):
        original = originals[like[i % len(like)]]
        # private, public, public, private...: copies of either original are of both kinds
        copy = _video(original.source.path, title=f"copy {i}", private=(i // 2) % 2 == 0)
        copy.refresh_from_db()
        if copy.outputs_from_id != original.pk:
            raise SystemExit(f"b8: video {copy.pk} was not linked to {original.pk}'s outputs")
        ids["linked"].append(copy.pk)
    # Queued last, just before the viewers come: the worker encodes them while they are served.
    for i in range(encoding):
        ids["encoding"].append(_video(encode, title=f"encoding {i}", private=True).pk)
    ids["state"] = state(ids["encoding"])
    return ids


def state(ids: list[int]) -> dict:
    from transcoding.models import Video

    rows = Video.objects.filter(pk__in=ids).values("pk", "status", "progress", "playable")
    return {str(row.pop("pk")): row for row in rows}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("base")
    b.add_argument("public_clip")
    b.add_argument("private_clip")
    b.add_argument("--timeout", type=float, default=300)
    g = commands.add_parser("grow")
    g.add_argument("--like", required=True)
    g.add_argument("--count", type=int, default=0)
    g.add_argument("--encode")
    g.add_argument("--encoding", type=int, default=0)
    s = commands.add_parser("state")
    s.add_argument("ids", nargs="*", type=int)
    args = parser.parse_args(argv)
    _setup()
    if args.command == "base":
        result = base(args.public_clip, args.private_clip, args.timeout)
    elif args.command == "grow":
        result = grow([int(i) for i in args.like.split(",")], args.count, args.encode, args.encoding)
    else:
        result = state(args.ids)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
