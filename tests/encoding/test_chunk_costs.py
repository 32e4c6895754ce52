"""What the chunk protocol costs the database per chunk must not grow with the number of chunks
a video has (issue 13: a thousand workers on one database; B6 in bench/ measures it for real).

Each test builds a video of 20 and of 400 chunk jobs as rows (no encode) and measures the same
calls on both (tests/support/costs.py: queries, and SQLite instructions, which count the rows
read): a call that reads every chunk costs twenty times more on the long video."""

import pytest

from tests.support.costs import measured
from transcoding.encoding import fanout, live, stitch
from transcoding.models import JobState, PartKind, Poster, ProcessingJob, Rendition, Storyboard, Video
from transcoding.status import videos

PARTS = (PartKind.RENDITIONS, PartKind.AUDIO, PartKind.STORYBOARD, PartKind.POSTER)
SIZES = (20, 400)
# A complete chunk's result, as big as a chunk of 8 segments on five rungs makes it.
RESULT = {
    "complete": True,
    "segments": {
        f"{h}p": [[f"seg_{i:05d}.m4s", 4.0, 250000] for i in range(8)] for h in (1080, 720, 480, 360, 240)
    },
    "inits": {f"{h}p": "0" * 64 for h in (1080, 720, 480, 360, 240)},
    "sheets": ["videos/1/storyboard/sheet_c001_0001.jpg"],
}


def chunked_video(
    chunks: int, *, complete: range = range(0)
) -> tuple[Video, ProcessingJob, list[ProcessingJob]]:
    """A video being encoded in `chunks` running chunk jobs; those in `complete` have finished
    (`stitch.finish_chunk`: result complete, progress 100)."""
    video = Video.objects.create(title="long", status="processing", duration=chunks * 8.0)
    Rendition.objects.create(video=video, name="180p", status="running", width=320, height=180)
    Rendition.objects.create(video=video, name="audio", kind=Rendition.Kind.AUDIO, status="running")
    Storyboard.objects.create(video=video, status="running")
    Poster.objects.create(video=video, status="running")
    root = ProcessingJob.objects.create(
        video=video, parts=list(PARTS), chunk=0, options={"chunks": chunks}, state=JobState.RUNNING
    )
    ProcessingJob.objects.bulk_create(
        ProcessingJob(
            video=video, parent=root, chunk=i, parts=[PartKind.RENDITIONS, PartKind.STORYBOARD],
            options={"chunks": chunks}, state=JobState.RUNNING,
        )
        for i in range(1, chunks)
    )  # fmt: skip
    ProcessingJob.objects.batch(root.pk).filter(chunk__in=list(complete)).update(result=RESULT, progress=100)
    return video, root, list(ProcessingJob.objects.batch(root.pk))


def assert_flat(costs: dict) -> None:
    """Same queries, and at most half as many instructions again, on 20x the chunks."""
    small, large = costs[SIZES[0]], costs[SIZES[-1]]
    assert large.queries == small.queries, costs
    assert large.steps <= 1.5 * small.steps + 20, costs


@pytest.mark.django_db
def test_a_progress_write_costs_the_same_whatever_the_number_of_chunks(settings):
    """The mean over chunks is written at most once per interval per video, not by every
    chunk's every write (each of which read the whole batch)."""
    settings.TRANSCODING_PROGRESS_INTERVAL = 3600
    costs = {}
    for n in SIZES:
        video, root, jobs = chunked_video(n)
        assert fanout.record_progress(jobs[0], root.pk, PARTS, 40) == round(40 / n)
        with measured() as costs[n]:
            for job in jobs[1:11]:
                fanout.record_progress(job, root.pk, PARTS, 50)
        assert list(ProcessingJob.objects.batch(root.pk).values_list("progress", flat=True)[:12]) == [
            40, *[50] * 10, 0
        ]  # fmt: skip
    assert_flat(costs)


@pytest.mark.django_db
def test_the_mean_progress_is_written_once_the_interval_has_passed(settings):
    settings.TRANSCODING_PROGRESS_INTERVAL = 0
    video, root, jobs = chunked_video(4)
    for job, percent in zip(jobs, (90, 90, 60, 0)):
        fanout.record_progress(job, root.pk, PARTS, percent)
    assert Video.objects.get(pk=video.pk).progress == 60
    assert set(Rendition.objects.filter(video=video).values_list("progress", flat=True)) == {
        0,
        60,
    }  # audio: not chunked
    assert Storyboard.objects.get(video=video).progress == 60


@pytest.mark.django_db
def test_a_late_progress_write_never_makes_a_complete_chunk_incomplete(settings):
    video, root, jobs = chunked_video(3, complete=range(1, 2))
    fanout.record_progress(jobs[1], root.pk, PARTS, 50)  # a worker taken over, still writing
    assert ProcessingJob.objects.get(pk=jobs[1].pk).progress == 100


@pytest.mark.django_db
def test_the_fan_in_of_a_chunk_before_the_last_reads_no_results_and_takes_no_lock():
    costs = {}
    for n in SIZES:
        video, root, jobs = chunked_video(n, complete=range(n - 1))  # all but the last
        with measured() as costs[n]:
            assert stitch.fan_in(jobs[1], root.pk, plan=None) is False
    assert_flat(costs)
    assert costs[SIZES[0]].queries == 1  # one EXISTS: no row lock, no result read


@pytest.mark.django_db
def test_whether_a_chunk_is_the_frontier_is_read_from_the_incomplete_chunks_only():
    costs = {}
    for n in SIZES:
        video, root, jobs = chunked_video(n, complete=range(n - 1))
        with measured() as costs[n]:
            assert live.is_frontier(jobs[-1], root.pk) is True
        assert live.is_frontier(jobs[-1], root.pk) is True
        ProcessingJob.objects.filter(pk=jobs[n // 2].pk).update(progress=30)
        assert live.is_frontier(jobs[-1], root.pk) is False
    assert_flat(costs)


@pytest.mark.django_db
def test_a_status_refresh_costs_the_same_whatever_the_number_of_chunks_running():
    costs = {}
    for n in SIZES:
        video, root, jobs = chunked_video(n)
        with measured() as costs[n]:
            refreshed = videos.video_refresh_status(video)
        assert refreshed.status == "processing"
    assert_flat(costs)


@pytest.mark.django_db
def test_the_status_is_derived_from_the_jobs_left(settings):
    """The EXISTS queries decide as the list of active jobs did."""
    video, root, jobs = chunked_video(3)
    ProcessingJob.objects.filter(video=video).update(state=JobState.QUEUED)
    Video.objects.filter(pk=video.pk).update(status="queued")
    assert videos.video_refresh_status(video).status == "queued"
    ProcessingJob.objects.filter(video=video).update(state=JobState.DONE)
    Rendition.objects.filter(video=video).update(status="ready")
    assert videos.video_refresh_status(video).status == "ready"
    ProcessingJob.objects.create(video=video, step=ProcessingJob.Step.SUBTITLES, state=JobState.RUNNING)
    assert videos.video_refresh_status(video).status == "ready"  # subtitles never hold it back
    ProcessingJob.objects.create(video=video, step=ProcessingJob.Step.DOWNLOAD, state=JobState.RUNNING)
    assert videos.video_refresh_status(video).status == "processing"


@pytest.mark.django_db
def test_the_fan_out_creates_a_thousand_chunk_jobs_in_as_many_queries_as_twenty(settings):
    """One INSERT for the missing chunks: made one by one, a thousand chunks kept the root job
    from heart-beating until its lease expired (B6)."""
    from fractions import Fraction

    from transcoding.ingest.create import default_preset
    from transcoding.media.ladder import SourceInfo, plan_encode
    from transcoding.models import preset_spec

    settings.TRANSCODING_CHUNK_SECONDS = settings.TRANSCODING_CHUNK_THRESHOLD_SECONDS = 8
    settings.TRANSCODING_MAX_ENCODES_IN_FLIGHT = settings.TRANSCODING_MAX_CHUNKS_IN_FLIGHT = 0
    queries = {}
    for n in (20, 1000):
        info = SourceInfo("mov,mp4,m4a,3gp,3g2,mj2", n * 8.0 - 0.5, 320, 180, "h264", Fraction(30))
        plan = plan_encode(info, preset_spec(default_preset()), segment_seconds=4.0)
        spans = fanout.plan_spans(plan, info, PARTS)
        video = Video.objects.create(title="long", status="processing", duration=info.duration)
        root = ProcessingJob.objects.create(video=video, parts=list(PARTS), state=JobState.RUNNING)
        with measured() as cost:
            created = fanout.fan_out(root, spans, plan, PARTS)
        queries[n] = cost.queries
        jobs = list(ProcessingJob.objects.batch(root.pk))
        assert [j.chunk for j in jobs] == list(range(n)) and created == [j.pk for j in jobs[1:]]
        assert jobs[-1].options["span"]["index"] == n - 1 and jobs[-1].parts == ["renditions", "storyboard"]
        assert fanout.fan_out(root, spans, plan, PARTS) == []  # a retried root finds them
        assert ProcessingJob.objects.batch(root.pk).count() == n
    # Batched INSERTs (SQLite fits ~60 rows in one; PostgreSQL 500): not two queries a chunk.
    assert queries[1000] - queries[20] <= 980 / 25, queries
