"""System checks: the ffmpeg binary runs, the dispatch backend imports, and the download
default is one of its choices."""

import subprocess

from django.core.checks import Error, register
from django.utils.module_loading import import_string

from transcoding.conf import dispatch_path, ffmpeg_binary, settings
from transcoding.models import DownloadRungs


@register()
def check_ffmpeg(app_configs, **kwargs):
    try:
        binary = ffmpeg_binary()
        subprocess.run([binary, "-hide_banner", "-version"], capture_output=True, check=True, timeout=20)
    except Exception as exc:  # any failure means transcoding cannot work
        return [
            Error(
                f"ffmpeg cannot run: {exc}",
                hint="Install requirements.txt (imageio-ffmpeg) or set TRANSCODING_FFMPEG_BINARY.",
                id="transcoding.E001",
            )
        ]
    return []


@register()
def check_dispatch(app_configs, **kwargs):
    try:
        import_string(dispatch_path())
    except ImportError as exc:
        return [
            Error(
                f"Dispatch backend {dispatch_path()!r} cannot be imported: {exc}",
                hint="Set TRANSCODING_DISPATCH to local, celery, zappa or a dotted path.",
                id="transcoding.E002",
            )
        ]
    return []


@register()
def check_download_rungs(app_configs, **kwargs):
    """A wrong value would otherwise surface as a traceback the first time a preset is made."""
    if str(settings.DOWNLOAD_RUNGS) in DownloadRungs.values:
        return []
    return [
        Error(
            f"TRANSCODING_DOWNLOAD_RUNGS is {settings.DOWNLOAD_RUNGS!r}.",
            hint=f"Set it to one of {', '.join(DownloadRungs.values)}.",
            id="transcoding.E003",
        )
    ]
