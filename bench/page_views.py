"""B9's page-view measurement, in a fresh process on a copy of the scratch database: how long
Django takes to start and serve a first request (the CPU part of a cold start), and then each
page a viewer loads: the player page and the status API the player polls while a video encodes.

The video is written as rows (a ready public video with its renditions, poster, storyboard and
subtitles), so what is timed is the site's work, not an encode. Requests go through Django's
test client (the whole middleware stack and the templates, no network), one at a time.

    python -m bench.page_views N     (run by measure(); prints one JSON document)
"""

import json
import subprocess
import sys
import time

START = time.perf_counter()
START_CPU = time.process_time()


def _ready_video() -> int:
    from transcoding.models import Poster, Rendition, Storyboard, Subtitle, Video
    from transcoding.storage.objects import video_prefix

    video = Video.objects.create(
        title="page view", status="ready", playable=True, published=True, private=False, duration=600.0
    )
    prefix = video_prefix(video.pk)
    Video.objects.filter(pk=video.pk).update(
        hls_path=f"{prefix}/master.m3u8", dash_path=f"{prefix}/manifest.mpd"
    )
    for name, height in (("1080p", 1080), ("720p", 720), ("480p", 480), ("360p", 360), ("240p", 240)):
        Rendition.objects.create(
            video=video, name=name, status="ready", width=height * 16 // 9, height=height
        )
    Rendition.objects.create(video=video, name="audio", kind=Rendition.Kind.AUDIO, status="ready")
    Poster.objects.create(video=video, status="ready", path=f"{prefix}/poster.jpg")
    Storyboard.objects.create(
        video=video, status="ready", vtt_path=f"{prefix}/sb.vtt", image_paths=[f"{prefix}/sb_1.jpg"]
    )
    Subtitle.objects.create(video=video, language="en", status="ready", vtt_path=f"{prefix}/en.vtt")
    return video.pk


def _timed(client, path: str) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(count: int) -> dict:
    import django

    django.setup()
    from django.test import Client

    pk = _ready_video()
    client = Client(HTTP_HOST="localhost")
    pages = {"player page": f"/videos/{pk}/", "status API": f"/api/videos/{pk}/"}
    first = _timed(client, pages["player page"])
    init = {"wall": time.perf_counter() - START, "cpu": time.process_time() - START_CPU, "first": first}
    samples = {name: [] for name in pages}
    for _ in range(count):
        for name, path in pages.items():  # interleaved: drift hits both alike
            samples[name].append(_timed(client, path))
    return {"init": init, "pages": samples}


def measure(env: dict, count: int) -> dict:
    """Run this module in a fresh process (its start is part of what is measured)."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.page_views", str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(result.stdout)


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
