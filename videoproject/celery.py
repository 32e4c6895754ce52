"""The Celery app: `celery -A videoproject worker` (and `beat` for the watchdog).

Configured from Django's settings, the `CELERY_*` names (see settings.py). The tasks live in
transcoding/jobs/dispatch/celery.py, the only other module that imports celery.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videoproject.settings")

app = Celery("videoproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
