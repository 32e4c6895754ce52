"""Create a superuser when there is none, and print its credentials (for `make run`)."""

import os
import secrets

from django.contrib.auth import get_user_model

from transcoding.management.base import ProjectCommand


class Command(ProjectCommand):
    help = "Create an admin user if no superuser exists, and print its credentials."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin user already exists; sign in with it at /admin/.")
            return
        username = os.environ.get("ADMIN_USERNAME", "admin")
        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(self.style.SUCCESS("Created an admin user for http://127.0.0.1:8000/admin/"))
        self.stdout.write(f"  username: {username}\n  password: {password}")
