"""python manage.py create_api_key NAME --role ingest [--role reviewer ...]: prints the secret once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.errors import ValidationFailed
from ftops.common.models import Role
from ftops.common.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key with roles; the secret is printed once and only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="what the key is for, e.g. 'payments-gateway'")
        parser.add_argument(
            "--role", action="append", dest="roles", default=[], metavar="ROLE",
            help=f"repeat for several roles; one of {', '.join(Role.values)}",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            issued = api_key_create(name=opts["name"], roles=opts["roles"], actor="cli")
        except ValidationFailed as exc:
            problems = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.fields.items())
            raise CommandError(f"{exc.message} ({problems})") from exc
        key = issued.api_key
        self.stdout.write(f"created API key {key.pk} '{key.name}' prefix {key.prefix} roles {','.join(key.roles)}")
        self.stdout.write("secret (shown once, store it now):")
        self.stdout.write(issued.secret)
