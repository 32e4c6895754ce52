"""The pure parts of downloads, table-driven: which rungs a preset's choice picks, the file name
and Content-Disposition a download is served with, which keys are downloads, and the system
check on TRANSCODING_DOWNLOAD_RUNGS."""

import pytest

from transcoding.checks import check_download_rungs
from transcoding.downloads.requests import rungs_for_choice
from transcoding.models import RUNG_NAME
from transcoding.storage.content_types import attachment_disposition, is_download, object_headers

LADDER = ["1080p", "720p", "360p"]


@pytest.mark.parametrize(
    "choice, names, expected",
    [
        ("none", LADDER, []),
        ("highest", LADDER, ["1080p"]),
        ("all", LADDER, LADDER),
        ("highest", [], []),
        ("all", [], []),
    ],
)
def test_rungs_for_choice(choice, names, expected):
    assert rungs_for_choice(choice, names) == expected


@pytest.mark.parametrize(
    "title, header",
    [
        ("Holiday", 'attachment; filename="holiday-720p.mp4"'),
        (
            "Été à Paris",
            'attachment; filename="ete-a-paris-720p.mp4"; '
            "filename*=UTF-8''%C3%A9t%C3%A9-%C3%A0-paris-720p.mp4",
        ),
        (
            "日本語",
            "attachment; filename=\"video-720p.mp4\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E-720p.mp4",
        ),
        ('a"b\\c/../d', 'attachment; filename="abcd-720p.mp4"'),
        ("x\r\nSet-Cookie: a=b", 'attachment; filename="x-set-cookie-ab-720p.mp4"'),
        ("", 'attachment; filename="video-720p.mp4"'),
        ("?!", 'attachment; filename="video-720p.mp4"'),
        ("a" * 300, f'attachment; filename="{"a" * 80}-720p.mp4"'),
    ],
)
def test_attachment_disposition(title, header):
    assert attachment_disposition(title, "720p") == header


@pytest.mark.parametrize(
    "key, download",
    [
        ("videos/7/downloads/720p.mp4", True),
        ("videos/7/720p/init.mp4", False),
        ("videos/7/downloads/720p.m4s", False),
        ("videos/7/downloads/x/720p.mp4", False),
        ("originals/7/downloads/720p.mp4", True),  # only outputs get an output's headers anyway
    ],
)
def test_download_keys_are_attachments_on_s3(key, download):
    assert is_download(key) is download
    headers = object_headers(key, output=key.startswith("videos/"))
    assert ("ContentDisposition" in headers) is (download or not key.startswith("videos/"))


@pytest.mark.parametrize(
    "name, valid",
    [("720p", True), ("1080p", True), ("4320p", True), ("72p", True), ("0720p", False), ("720", False),
     ("720P", False), ("../720p", False), ("720p\n", False), ("12345p", False), ("", False)],
)  # fmt: skip
def test_rung_names(name, valid):
    assert bool(RUNG_NAME.match(name)) is valid


@pytest.mark.parametrize("value, errors", [("none", 0), ("highest", 0), ("all", 0), ("every", 1), ("", 1)])
def test_the_download_default_is_checked(settings, value, errors):
    settings.TRANSCODING_DOWNLOAD_RUNGS = value
    assert len(check_download_rungs(None)) == errors
