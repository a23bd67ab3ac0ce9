"""python manage.py revoke_api_key PREFIX_OR_ID"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.models import ApiKey
from ftops.common.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key by its public prefix or id; requests with it are refused from then on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="the key's prefix (as listed) or numeric id")

    def handle(self, *args: Any, **opts: Any) -> None:
        ident = str(opts["key"])
        key = ApiKey.objects.filter(prefix=ident).first()
        if key is None and ident.isdigit():
            key = ApiKey.objects.filter(pk=int(ident)).first()
        if key is None:
            raise CommandError(f"no API key with prefix or id '{ident}'; list keys with GET /api/v1/keys")
        already = key.revoked_at is not None
        api_key_revoke(api_key=key, actor="cli")
        state = "was already revoked" if already else "revoked"
        self.stdout.write(f"API key {key.pk} '{key.name}' ({key.prefix}) {state}")
