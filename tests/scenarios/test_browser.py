"""In a real browser: Playwright driving Debian's Chromium (tests/support/browser.py) against
the live test server. Screenshots of the player page and the admin go to test-artifacts/.
Nothing here downloads a browser: without /usr/bin/chromium these skip, and `make test`
installs Debian's chromium package first.
"""

import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.support.browser import (
    BROWSER_MARKS,
    PLAYER,
    current_time,
    open_menu,
    open_player,
    play_muted,
    shot,
    wait_js,
)
from tests.support.media import make_clip
from transcoding import services
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import outbox, run_recorded
from transcoding.jobs.tasks import process_job
from transcoding.models import Subtitle, Video

pytestmark = BROWSER_MARKS


SRT_EN = b"1\n00:00:00,000 --> 00:00:05,000\nHello from the test pattern\n"
SRT_FR = "1\n00:00:00,000 --> 00:00:05,000\nBonjour de la mire\n".encode("cp1252")


@pytest.fixture
def ready_video(transactional_db, clips):
    video = video_create(source=clips["720p"], title="Test pattern", published=True)
    services.video_request_processing(video)
    assert run_recorded() == ["done"]
    for language, label, data in (("en", "English", SRT_EN), ("fr", "Français", SRT_FR)):
        track = Subtitle(video=video, language=language, label=label)
        track.file = SimpleUploadedFile(f"{language}.srt", data)
        services.subtitle_save(track)
    return Video.objects.get(pk=video.pk)


def test_player_plays_switches_quality_shows_captions_and_thumbnails(live_server, page, ready_video):
    open_player(page, f"{live_server.url}/videos/{ready_video.pk}/")
    play_muted(page)
    wait_js(page, "document.querySelector('video').currentTime > 1.0", message="playback never advanced")

    # Quality menu: Auto plus every rung; choosing 240p switches the stream.
    open_menu(page, ".shaka-resolution-button")
    wait_js(
        page, "document.querySelectorAll('.shaka-resolutions button').length >= 6", message="menu not filled"
    )
    entries = page.locator(".shaka-resolutions button").all_inner_texts()
    assert {"720p", "480p", "360p", "240p", "Auto"} <= {e.strip() for e in entries}
    page.click(".shaka-resolutions button:has-text('240p')")
    wait_js(
        page,
        f"{PLAYER}.player.getVariantTracks().some(t => t.active && t.height === 240)",
        message="did not switch to 240p",
    )
    before = current_time(page)
    wait_js(
        page, f"document.querySelector('video').currentTime > {before + 0.5}", message="stalled after switch"
    )

    # Captions menu lists both languages by label; turning English on shows its cue text.
    page.keyboard.press("Escape")
    open_menu(page, ".shaka-caption-button")
    languages = [t.strip() for t in page.locator(".shaka-text-languages button").all_inner_texts()]
    assert "English" in languages and "Français" in languages
    page.click(".shaka-text-languages button:has-text('English')")
    page.evaluate("document.querySelector('video').currentTime = 1")
    wait_js(
        page,
        "(document.querySelector('.shaka-text-container') || {}).innerText"
        "?.includes('Hello from the test pattern')",
        message="caption text never shown",
    )

    # Hovering the timeline shows a storyboard thumbnail.
    page.keyboard.press("Escape")
    bar = page.locator(".shaka-seek-bar-container")
    box = bar.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    wait_js(
        page,
        "(() => { const t = document.querySelector('.shaka-player-ui-thumbnail-container');"
        " const i = t && t.querySelector('img'); return t && getComputedStyle(t).visibility !== 'hidden'"
        " && t.offsetWidth > 0 && i && i.src.includes('sheet_'); })()",
        message="no storyboard thumbnail on hover",
    )
    shot(page, "player.png")

    # Keyboard and speed: the player reacts to keys, and the speed menu changes the rate.
    page.evaluate("document.querySelector('video').playbackRate = 1")
    open_menu(page, ".shaka-playbackrate-button")
    page.click(".shaka-playback-rates button:has-text('1,5'), .shaka-playback-rates button:has-text('1.5')")
    assert page.evaluate("document.querySelector('video').playbackRate") == 1.5
    assert page.problems == []


def test_dash_manifest_plays(live_server, page, ready_video):
    open_player(page, f"{live_server.url}/videos/{ready_video.pk}/?format=dash")
    assert page.evaluate(f"{PLAYER}.player.getAssetUri()").endswith("manifest.mpd")
    play_muted(page)
    wait_js(page, "document.querySelector('video').currentTime > 1.0", message="DASH playback never advanced")
    heights = page.evaluate(f"{PLAYER}.player.getVariantTracks().map(t => t.height)")
    assert sorted(set(heights)) == [240, 360, 480, 720]
    assert sorted(t["language"] for t in page.evaluate(f"{PLAYER}.player.getTextTracks()")) == ["en", "fr"]
    assert page.problems == []


def test_processing_video_shows_progress_then_plays(live_server, page, transactional_db, clips):
    video = video_create(source=clips["720p"], title="Still processing", published=True)
    services.video_request_processing(video)  # recorded, not run yet
    page.goto(f"{live_server.url}/videos/{video.pk}/")
    note = page.locator("[data-processing]")
    assert note.is_visible() and note.inner_text().startswith("Processing 0%")
    shot(page, "player-processing.png")
    assert run_recorded() == ["done"]
    # The page polls the status API and starts playing by itself.
    wait_js(
        page, "document.querySelector('video').currentTime > 0.5", timeout=40, message="never started playing"
    )
    assert not note.is_visible()
    assert page.problems == []


PREVIEW = "document.querySelector('.tc-player video')"


def staff_login(page, live_server) -> None:
    get_user_model().objects.create_superuser("staff", "staff@example.com", "a-long-password")
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "a-long-password")
    page.click("input[type=submit]")


def preview_loaded(page, message: str) -> None:
    """The change page's preview player has its media's metadata; else fail with its note."""
    note = "(document.querySelector('.tc-player-note') || {}).textContent"
    try:
        wait_js(page, f"{PREVIEW} && {PREVIEW}.readyState > 0", timeout=30)
    except AssertionError:
        raise AssertionError(f"{message}: {page.evaluate(note)!r} {page.problems}") from None


def test_admin_upload_then_status_reaches_ready_without_reload(live_server, page, transactional_db, clips):
    staff_login(page, live_server)
    page.goto(f"{live_server.url}/admin/transcoding/video/add/")
    page.fill("#id_title", "Uploaded in the browser")
    page.set_input_files("#id_source", str(clips["720p"]))
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/transcoding/video/")
    video = Video.objects.get(title="Uploaded in the browser")
    assert video.source_size == clips["720p"].stat().st_size
    page.goto(f"{live_server.url}/admin/transcoding/video/{video.pk}/change/")
    badge = page.locator("[data-tc-field=status]").first
    assert badge.inner_text().strip() == "Queued"
    marker = page.evaluate("window.__noReload = 1")  # survives only if the page is not reloaded
    assert marker == 1
    assert run_recorded() == ["done"]
    wait_js(page, "document.querySelector('[data-tc-field=status]').innerText.trim() === 'Ready'",
            timeout=40, message="status never reached Ready on the page")  # fmt: skip
    assert page.evaluate("window.__noReload") == 1
    preview_loaded(page, "admin preview never loaded")
    shot(page, "admin-change.png")
    page.goto(f"{live_server.url}/admin/transcoding/video/")
    shot(page, "admin-changelist.png")


def first_of_three_chunks(settings, capture, chunk: int = 4) -> Video:
    """A video of three `chunk`-second chunks with only chunk 0 encoded: playable, still
    processing. Chunks 1 and 2 wait in the recording dispatcher's outbox (`run_recorded`)."""
    settings.TRANSCODING_CHUNK_SECONDS = chunk
    settings.TRANSCODING_CHUNK_THRESHOLD_SECONDS = chunk + 2
    source = make_clip(Path(settings.MEDIA_ROOT).parent / "long.mp4", seconds=3 * chunk, size="640x360")
    with capture(execute=True):
        video = video_create(source=source, title="Long video", published=True)
        services.video_request_processing(video)
        assert process_job(outbox.pop(0)) == "done"  # chunk 0 only; chunks 1 and 2 wait
    video = Video.objects.get(pk=video.pk)
    assert video.playable and video.status == "processing"
    return video


def audio_playlist_last(page):
    """Answer the audio's media playlist a second late, so the player parses it after
    the rungs'. Shaka takes the presentation's type from the playlist parsed last: when the
    audio's was ended (VOD) while the rungs grew, playback stopped at the end of chunk 0; a
    loaded machine (CI) made that order by chance."""

    def late(route):
        time.sleep(1.0)
        route.continue_()

    page.route("**/audio/index.m3u8", late)


def test_long_video_plays_from_the_start_while_later_chunks_encode(
    live_server, page, transactional_db, settings, django_capture_on_commit_callbacks
):
    """First playable in seconds: after chunk 0 of three the page plays from 0, not from a
    live edge (for a live playlist, three target durations before its end: 2 s into chunk 0's
    8 s; a 4 s chunk 0 would put it at 0 too), and keeps playing across the join once the
    rest lands. (Shaka 5 starts an EVENT playlist at 0 by itself; the page asks for 0 too.)"""

    video = first_of_three_chunks(settings, django_capture_on_commit_callbacks, chunk=8)
    audio_playlist_last(page)
    open_player(page, f"{live_server.url}/videos/{video.pk}/")
    # Where playback began, read when it began (a loaded machine reads currentTime later).
    page.evaluate(
        "() => { const v = document.querySelector('video');"
        " v.addEventListener('playing', () => { window.__startedAt = v.currentTime; }, {once: true}); }"
    )
    play_muted(page)
    wait_js(page, "document.querySelector('video').currentTime > 0.5", message="never started playing")
    assert page.evaluate("window.__startedAt") < 1.0  # from the start, not the live edge
    encoding = page.locator("[data-encoding]")
    assert encoding.is_visible() and encoding.inner_text().startswith("Still encoding")
    shot(page, "player-first-chunk.png")
    assert Video.objects.get(pk=video.pk).status == "processing"
    assert run_recorded() == ["done", "done"]
    page.evaluate("document.querySelector('video').playbackRate = 2")
    state = (
        "(() => { const v = document.querySelector('video'); const b = v.buffered; const r = [];"
        " for (let i = 0; i < b.length; i++) r.push([b.start(i), b.end(i)]);"
        " return {time: v.currentTime, paused: v.paused, ready: v.readyState, buffered: r,"
        f" error: {PLAYER}.dataset.error || null}}; }})()"
    )
    try:
        wait_js(page, "document.querySelector('video').currentTime > 10.0", timeout=45)  # past the join
    except AssertionError:
        raise AssertionError(f"stalled at the join: {page.evaluate(state)} {page.problems}") from None
    assert Video.objects.get(pk=video.pk).status == "ready"
    wait_js(page, "document.querySelector('[data-encoding]').hidden", timeout=15, message="note stayed")
    assert page.problems == []


def test_admin_preview_plays_while_the_video_still_encodes(
    live_server, page, transactional_db, settings, django_capture_on_commit_callbacks
):
    """Playable after chunk 0: the change page's preview (hls.js) loads the growing
    playlists. With the audio's playlist ended while the rungs grew, it never loaded."""
    video = first_of_three_chunks(settings, django_capture_on_commit_callbacks)
    staff_login(page, live_server)
    page.goto(f"{live_server.url}/admin/transcoding/video/{video.pk}/change/")
    assert page.locator("[data-tc-field=status]").first.inner_text().strip() == "Processing"
    preview_loaded(page, "preview never loaded while encoding")
    buffered = f"{PREVIEW}.buffered.length && {PREVIEW}.buffered.end(0)"
    wait_js(page, f"{buffered} >= 3.9", message="chunk 0 never buffered in the preview")
    assert page.evaluate(buffered) < 4.1  # chunk 0's 4 s, and no more
    assert Video.objects.get(pk=video.pk).status == "processing"
    shot(page, "admin-preview-while-encoding.png")
    assert page.problems == []
