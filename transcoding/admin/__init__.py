"""The Django admin: upload videos, watch every part's status and progress, reprocess, delete.

Declarative and thin: saving and actions call `services`, lists read `selectors`. The markup
carries `data-tc-*` attributes that `static/transcoding/admin-live.js` updates from the status
API while a video is processing; `admin-upload.js` streams uploads with a progress bar.

    forms.py    the video and subtitle forms (validation, refused uploads)
    display.py  HTML for columns and read-only fields (chips, progress, player preview)
    inlines.py  renditions, subtitles and jobs on a video's page; a preset's rungs
    actions.py  reprocess, generate subtitles, cancel
    videos.py, presets.py, jobs.py, api_keys.py   the registered model admins
    webhooks.py the webhook endpoints (secret shown once) and deliveries (log, redeliver)
"""

from transcoding.admin import api_keys, jobs, presets, videos, webhooks

__all__ = ["api_keys", "jobs", "presets", "videos", "webhooks"]
