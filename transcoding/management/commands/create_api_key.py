"""Make an API key for a user and print it once (the admin does the same under API keys)."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from transcoding.api.keys import api_key_create
from transcoding.errors import InvalidRequest
from transcoding.management.base import ProjectCommand
from transcoding.models import ApiKey


class Command(ProjectCommand):
    help = "Create an API key for USER and print it (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="What uses the key.")
        parser.add_argument("--scope", choices=ApiKey.Scope.values, default=ApiKey.Scope.READ)

    def handle(self, *args, username, name, scope, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        try:
            key, raw = api_key_create(user=user, name=name, scope=scope)
        except InvalidRequest as exc:
            raise CommandError(str(exc))
        self.stderr.write(f"API key {key.prefix} ({scope}) for {username}; it is not stored, keep it now:")
        self.stdout.write(raw)
