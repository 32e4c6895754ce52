"""Dispatch backends: how a queued ProcessingJob reaches a worker. Chosen by a dotted path
in `TRANSCODING_DISPATCH` (or an alias: local, recording), like Django's email backends.
Only this package imports celery or zappa."""

from django.utils.module_loading import import_string

from transcoding.conf import dispatch_path


def get_dispatcher():
    return import_string(dispatch_path())()
