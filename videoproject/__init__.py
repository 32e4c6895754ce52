# The Celery app is loaded with Django so that `shared_task`s bind to it (celery is a hard
# dependency; importing the app connects to nothing).
from .celery import app as celery_app

__all__ = ("celery_app",)
