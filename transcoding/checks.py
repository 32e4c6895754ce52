"""System checks: the ffmpeg binary runs and the dispatch backend imports."""

import subprocess

from django.core.checks import Error, register
from django.utils.module_loading import import_string

from transcoding.conf import dispatch_path, ffmpeg_binary


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
