"""The base of the project's management commands.

A command run while the database is down, or against a wrong DATABASE_URL, says so in one
line on stderr and exits 1, where Django would print a traceback: operators run these from
shells and scripts, and a failover or a typo is not a bug of ours."""

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError

from transcoding.errors import one_line


class ProjectCommand(BaseCommand):
    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except (OperationalError, InterfaceError) as exc:
            # What committed before stays (an ingest's earlier videos stay queued).
            raise CommandError(f"The database failed, so the command stopped: {one_line(exc)}") from exc
