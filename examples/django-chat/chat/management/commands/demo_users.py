"""`manage.py demo_users`: create (or reset) the demo users alice and bob."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

#: username -> password. Demo accounts for a local example; never deploy them.
DEMO_USERS = {"alice": "wonderland", "bob": "builder"}


class Command(BaseCommand):
    help = "Create the demo users alice (password: wonderland) and bob (password: builder)."

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        for username, password in DEMO_USERS.items():
            user, created = users.objects.get_or_create(username=username)
            user.set_password(password)  # reset, so that the README's password always works
            user.is_active = True
            user.save()
            verb = "created" if created else "reset"
            self.stdout.write(f"demo user {username} {verb} (password: {password})")
