"""Split and stitch with real ffmpeg: a 24 s NTSC clip in three 8 s chunks against the same
clip encoded in one piece. The chunked result must play like the other: the same segments,
timestamps continuous across the joins, one audio track, playable after the first chunk."""

from datetime import timedelta

import m3u8
import pytest
from django.db import connection
from django.utils import timezone

from tests.support import checks
from tests.support.media import make_clip
from transcoding import services
from transcoding.encoding import encode
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import outbox, run_recorded
from transcoding.jobs.tasks import process_job
from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.models import JobState, PartStatus, ProcessingJob, Rendition, Video
from transcoding.status import jobs
from transcoding.status import parts as part_status
from transcoding.status.jobs import job_claim
from transcoding.status.videos import video_refresh_status

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

LADDER = ["720p", "480p", "360p", "240p"]
FRAME = 1001 / 30000


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory):
    """24 s at 29.97 fps: segment and chunk boundaries fall between frames."""
    path = tmp_path_factory.mktemp("chunks") / "ntsc.mp4"
    return make_clip(path, seconds=24, size="1280x720", rate="30000/1001")


@pytest.fixture
def three_chunks(settings):
    settings.TRANSCODING_CHUNK_SECONDS = 8
    settings.TRANSCODING_CHUNK_THRESHOLD_SECONDS = 12


def request(path, capture, force: bool = False) -> Video:
    """Upload and queue; `force` encodes even when the same bytes were encoded already."""
    with capture(execute=True):
        video = video_create(source=path)
        services.video_request_processing(video, force=force)
    return video


def run_all(capture) -> None:
    """Deliver every recorded job, and what they dispatch, until none is left."""
    while outbox:
        run_next(capture)


def run_next(capture) -> str:
    """Deliver the oldest recorded job, running what it dispatches after commit."""
    with capture(execute=True):
        return process_job(outbox.pop(0))


def test_three_chunks_stitch_into_what_one_encode_makes(
    ntsc_clip, three_chunks, settings, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    chunked = request(ntsc_clip, capture)
    assert run_next(capture) == "done"  # the root: plans, fans out, encodes chunk 0
    jobs = list(ProcessingJob.objects.filter(video=chunked).order_by("chunk"))
    assert [j.chunk for j in jobs] == [0, 1, 2]
    assert [j.parts for j in jobs[1:]] == [["renditions", "storyboard"]] * 2
    assert len(outbox) == 2  # the other chunks were dispatched, in time order
    assert outbox == [jobs[1].pk, jobs[2].pk]
    assert run_recorded() == ["done", "done"]
    chunked = Video.objects.get(pk=chunked.pk)
    checks.assert_all_outputs(chunked, 24.0, LADDER, audio=True)
    jobs = list(ProcessingJob.objects.filter(video=chunked).order_by("chunk"))
    assert all(j.state == JobState.DONE and j.result["complete"] for j in jobs)
    assert jobs[0].result["stitched"]
    # Each rung's init segment came out byte-identical from every chunk.
    for name in LADDER:
        assert len({j.result["inits"][name] for j in jobs}) == 1

    settings.TRANSCODING_CHUNK_THRESHOLD_SECONDS = 1000
    whole = request(ntsc_clip, capture, force=True)
    assert run_recorded() == ["done"]
    whole = Video.objects.get(pk=whole.pk)
    assert whole.jobs.count() == 1

    for name in [*LADDER, "audio"]:
        a = chunked.renditions.get(name=name)
        b = whole.renditions.get(name=name)
        # The same segments: count, names, and durations within a frame.
        assert [s[0] for s in a.segments] == [s[0] for s in b.segments], name
        for (_, da), (_, db) in zip(a.segments, b.segments):
            assert abs(da - db) <= FRAME + 1e-6, name
        assert abs(a.duration - b.duration) <= FRAME, name
    for name in LADDER:
        a, b = chunked.renditions.get(name=name), whole.renditions.get(name=name)
        times = checks.packet_times(a)
        assert times == pytest.approx(checks.packet_times(b), abs=1e-6), name  # frame for frame
        gaps = {round(t2 - t1, 6) for t1, t2 in zip(times, times[1:])}
        assert gaps == {round(FRAME, 6)}, name  # continuous across the joins at 8 and 16 s
        assert checks.decoded_frames(a) == checks.decoded_frames(b) == len(times)
    # One audio track for the whole video, encoded once: continuous packets, no gap.
    audio = checks.packet_times(chunked.renditions.get(name="audio"))
    steps = {round(t2 - t1, 6) for t1, t2 in zip(audio, audio[1:])}
    assert steps == {round(1024 / 48000, 6)}
    assert abs(len(audio) * 1024 / 48000 - 24.0) < 0.05
    # The storyboard's cues point into each chunk's own sheets.
    sheets = {path.rsplit("/", 1)[1] for path in chunked.storyboard.image_paths}
    assert {"sheet_c000_0001.jpg", "sheet_c001_0001.jpg", "sheet_c002_0001.jpg"} <= sheets
    assert chunked.storyboard.tile_count == whole.storyboard.tile_count


def media_playlists(video: Video) -> list[m3u8.M3U8]:
    """Every media playlist the master names: the video rungs and the audio group's."""
    master_path = checks.stored(Video.objects.get(pk=video.pk).hls_path)
    master = m3u8.load(str(master_path))
    uris = [p.uri for p in master.playlists] + [m.uri for m in master.media if m.type == "AUDIO"]
    assert len(master.playlists) >= 2 and len(uris) == len(master.playlists) + 1
    return [m3u8.load(str(master_path.parent / uri)) for uri in uris]


def kinds(video: Video) -> set[tuple[str, bool]]:
    """(type, ended) of every media playlist the master names: one pair when they agree."""
    return {(p.playlist_type, p.is_endlist) for p in media_playlists(video)}


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    """12 s at 640x360: three 4 s chunks of two rungs, a few seconds to encode."""
    return make_clip(tmp_path_factory.mktemp("small") / "small.mp4", seconds=12, size="640x360")


@pytest.fixture
def four_second_chunks(settings):
    settings.TRANSCODING_CHUNK_SECONDS = 4
    settings.TRANSCODING_CHUNK_THRESHOLD_SECONDS = 6


def test_renditions_requested_again_after_chunk_0_end_the_audio_playlist_at_their_stitch(
    small_clip, four_second_chunks, django_capture_on_commit_callbacks
):
    """Chunk 0 published the audio whole but growing; a request for the renditions alone
    replaces the encode (no audio in its batch): its stitch still ends the audio's playlist."""
    capture = django_capture_on_commit_callbacks
    video = request(small_clip, capture)
    assert run_next(capture) == "done"  # chunk 0: rungs and audio growing
    assert kinds(video) == {("event", False)}
    with capture(execute=True):
        services.video_request_processing(video, parts=["renditions"], force=True)
    run_all(capture)  # the old chunks are cancelled; the new request's run
    video = Video.objects.get(pk=video.pk)
    assert video.status == "ready"
    assert kinds(video) == {("vod", True)}


def test_a_ready_video_encoded_again_never_mixes_ended_and_growing_playlists(
    small_clip, four_second_chunks, django_capture_on_commit_callbacks
):
    """Encoded again, a ready video serves its old ended rungs until the new stitch: the
    audio the new chunk 0 makes is published ended too, not growing beside them."""
    capture = django_capture_on_commit_callbacks
    video = request(small_clip, capture)
    run_all(capture)
    assert Video.objects.get(pk=video.pk).status == "ready"
    with capture(execute=True):
        services.video_request_processing(video, force=True)
    assert run_next(capture) == "done"  # the new chunk 0
    assert Video.objects.get(pk=video.pk).status == "processing"
    assert kinds(video) == {("vod", True)}
    run_all(capture)
    assert Video.objects.get(pk=video.pk).status == "ready"
    assert kinds(video) == {("vod", True)}


def test_a_root_retried_while_the_last_chunk_stitches_leaves_the_renditions_ready(
    small_clip, four_second_chunks, django_capture_on_commit_callbacks, monkeypatch
):
    """The root's worker stopped after its chunk was recorded, and the watchdog retried it;
    the retry starts while the last chunk stitches. It must see what the stitch finished, not
    set the ready rungs back to running (seen once at scale: a ready video whose renditions
    stayed "running" for good)."""
    capture = django_capture_on_commit_callbacks
    video = request(small_clip, capture)
    assert run_next(capture) == "done"  # chunk 0, recorded
    root = ProcessingJob.objects.get(video=video, chunk=0)
    ProcessingJob.objects.filter(pk=root.pk).update(
        state=JobState.RUNNING, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )  # as if its worker died before ending the job
    with capture(execute=True):
        requeued, _, _ = jobs_recover_stuck()
    assert requeued == [root.pk]
    outbox.remove(root.pk)
    probe = encode.probe_and_record

    def last_chunk_stitches_meanwhile(video):
        run_all(capture)  # chunks 1 and 2: the last one stitches
        assert set(video.renditions.values_list("status", flat=True)) == {PartStatus.READY}
        return probe(video)

    monkeypatch.setattr(encode, "probe_and_record", last_chunk_stitches_meanwhile)
    with capture(execute=True):
        assert process_job(root.pk) == "done"
    video = Video.objects.get(pk=video.pk)
    assert {r.name: r.status for r in video.renditions.all()} == {
        "360p": PartStatus.READY,
        "240p": PartStatus.READY,
        "audio": PartStatus.READY,
    }
    assert video.status == "ready" and kinds(video) == {("vod", True)}


def test_playable_after_the_first_chunk_with_playlists_growing_in_order(
    ntsc_clip, three_chunks, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    video = request(ntsc_clip, capture)
    assert run_next(capture) == "done"  # chunk 0 only
    video = Video.objects.get(pk=video.pk)
    assert video.playable and video.status == "processing" and not video.dash_path
    master = m3u8.load(str(checks.stored(video.hls_path)))
    assert len(master.playlists) == 4 and master.media[0].type == "AUDIO"
    top = checks.stored(video.hls_path).parent / master.playlists[0].uri
    event = m3u8.load(str(top))
    assert event.playlist_type == "event" and not event.is_endlist
    assert [s.uri for s in event.segments] == ["seg_00001.m4s", "seg_00002.m4s"]
    # The audio is whole already, but its playlist grows-typed like the rungs': players take
    # the presentation's type from the playlist they parse last, and one ended playlist made
    # Shaka stop at the end of chunk 0 (and hls.js never start).
    assert len(media_playlists(video)) == 5 and kinds(video) == {("event", False)}
    status = video_refresh_status(video)
    assert status.playable

    # Chunk 2 finishing first does not extend the playlists past the gap at chunk 1.
    outbox.reverse()
    assert run_next(capture) == "done"
    event = m3u8.load(str(top))
    assert [s.uri for s in event.segments] == ["seg_00001.m4s", "seg_00002.m4s"] and not event.is_endlist
    assert Video.objects.get(pk=video.pk).status == "processing"

    # The last chunk fills the gap and stitches: VOD playlists, the MPD, ready.
    assert run_next(capture) == "done"
    final = m3u8.load(str(top))
    assert final.playlist_type == "vod" and final.is_endlist and len(final.segments) == 6
    assert kinds(video) == {("vod", True)}
    video = Video.objects.get(pk=video.pk)
    assert video.status == "ready" and video.dash_path and video.progress == 100


def test_a_chunk_whose_worker_stopped_is_retried_alone(
    ntsc_clip, three_chunks, settings, django_capture_on_commit_callbacks
):
    """A worker that dies mid-chunk leaves its lease to expire; the watchdog requeues that
    chunk only, and the video finishes with the other chunks' work kept."""
    capture = django_capture_on_commit_callbacks
    video = request(ntsc_clip, capture)
    assert run_next(capture) == "done"
    first, second = (ProcessingJob.objects.get(video=video, chunk=i) for i in (1, 2))
    assert job_claim(first.pk, token="dead-worker") is not None  # claimed, then the worker died
    outbox.remove(first.pk)
    assert run_next(capture) == "done"  # chunk 2
    ProcessingJob.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with capture(execute=True):
        requeued, failed, _ = jobs_recover_stuck()
    assert requeued == [first.pk] and failed == []
    assert run_recorded() == ["done"]
    attempts = dict(ProcessingJob.objects.filter(video=video).values_list("chunk", "attempt"))
    assert attempts == {0: 1, 1: 2, 2: 1}
    video = Video.objects.get(pk=video.pk)
    checks.assert_all_outputs(video, 24.0, LADDER, audio=True)


def test_a_chunk_that_fails_for_good_fails_the_video_and_stops_the_others(
    ntsc_clip, three_chunks, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    video = request(ntsc_clip, capture)
    assert run_next(capture) == "done"
    doomed = ProcessingJob.objects.get(video=video, chunk=1)
    doomed.refresh_from_db()
    jobs.job_failed_for_good(doomed, "The file is truncated or damaged.")
    other = ProcessingJob.objects.get(video=video, chunk=2)
    assert other.state == JobState.CANCELLED
    video = Video.objects.get(pk=video.pk)
    assert video.status == "failed" and video.error == "The file is truncated or damaged."
    assert video.source  # the original is kept
    assert all(r.status in (PartStatus.READY, PartStatus.FAILED) for r in video.renditions.all())


@pytest.mark.django_db(transaction=True)
def test_two_chunks_finishing_together_leave_the_video_ready(clips, monkeypatch):
    """The refresh of the chunk that finished first read "the other chunk is running" and must
    not write that after the last chunk's refresh wrote "ready" (it did: a video stayed
    "processing" for good). Refreshes take the video's row lock, so the second waits."""
    import threading

    video = video_create(source=clips["silent"])
    first = ProcessingJob.objects.create(video=video, state=JobState.DONE, chunk=0)
    last = ProcessingJob.objects.create(video=video, parent=first, chunk=1, state=JobState.RUNNING)
    Rendition.objects.create(video=video, name="360p", status=PartStatus.READY, finished_at=timezone.now())
    Video.objects.filter(pk=video.pk).update(status="processing", hls_path="videos/1/master.m3u8")

    read, release = threading.Event(), threading.Event()
    original = part_status.all_parts

    def slow_first_read(video_id):
        if threading.current_thread().name == "first":
            read.set()  # it has seen `last` running; the last chunk finishes meanwhile
            release.wait(10)
        return original(video_id)

    monkeypatch.setattr(part_status, "all_parts", slow_first_read)

    def refresh(finish=None):
        try:
            if finish is not None:  # what the last chunk's worker does: finish its job, refresh
                ProcessingJob.objects.filter(pk=finish).update(state=JobState.DONE)
            video_refresh_status(video)
        finally:
            connection.close()

    stale = threading.Thread(target=refresh, name="first")
    stale.start()
    assert read.wait(10)
    final = threading.Thread(target=refresh, args=(last.pk,), name="last")
    final.start()
    final.join(0.5)  # waits for the first refresh's lock (without it: done, then overwritten)
    release.set()
    stale.join(15)
    final.join(15)
    assert Video.objects.get(pk=video.pk).status == "ready"


def test_a_cap_of_one_chunk_in_flight_encodes_them_one_after_another(
    ntsc_clip, three_chunks, settings, django_capture_on_commit_callbacks
):
    """Bounded fan-out: with one encode of the video in flight, the fan-out holds chunks 1 and
    2 (no message), and each chunk's end hands the slot to the next; the video is the same."""
    settings.TRANSCODING_MAX_CHUNKS_IN_FLIGHT = 1
    capture = django_capture_on_commit_callbacks
    video = request(ntsc_clip, capture)
    assert run_next(capture) == "done"  # the root, chunk 0; it hands its slot to chunk 1
    held = dict(ProcessingJob.objects.filter(video=video).values_list("chunk", "held"))
    assert held == {0: False, 1: False, 2: True}
    assert len(outbox) == 1
    assert run_next(capture) == "done"  # chunk 1, which releases chunk 2
    assert run_next(capture) == "done"  # chunk 2 stitches
    assert outbox == []
    video = Video.objects.get(pk=video.pk)
    checks.assert_all_outputs(video, 24.0, LADDER, audio=True)
    jobs = ProcessingJob.objects.filter(video=video)
    assert {(j.state, j.attempt, j.held) for j in jobs} == {(JobState.DONE, 1, False)}
