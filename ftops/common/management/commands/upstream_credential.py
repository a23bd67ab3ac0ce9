"""python manage.py upstream_credential (set NAME --base-url URL [--value-env VAR] | list | delete NAME)

The value is never a command-line argument (it would land in shell history and in ``ps``):
``set`` reads it from stdin (a hidden prompt on a terminal, else the piped text) or from an
environment variable the admin names here at the terminal with ``--value-env``.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_delete, upstream_credential_list, upstream_credential_set
from ftops.common.errors import FtopsError


class Command(BaseCommand):
    help = "Register, rotate, list or delete named upstream credentials (keys for model endpoints)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        set_parser = actions.add_parser("set", help="create or rotate a credential")
        set_parser.add_argument("name", help="what API callers name, e.g. openai-prod")
        set_parser.add_argument("--base-url", required=True, help="the only endpoint the value is ever sent to")
        set_parser.add_argument("--value-env", metavar="VAR",
                                help="read the value from this environment variable instead of stdin")
        set_parser.add_argument("--keep-value", action="store_true",
                                help="update other fields and keep the stored value (same base URL only)")
        actions.add_parser("list", help="names and base URLs (values are never shown)")
        delete_parser = actions.add_parser("delete", help="delete a credential")
        delete_parser.add_argument("name")

    def handle(self, *args: Any, **opts: Any) -> None:
        actor = Actor.cli()
        try:
            if opts["action"] == "list":
                for credential in upstream_credential_list():
                    row = (credential.name, credential.base_url, f"set {credential.value_set_at:%Y-%m-%d}",
                           f"by {credential.created_by or '-'}")
                    self.stdout.write("\t".join(row))
                return
            if opts["action"] == "delete":
                upstream_credential_delete(name=opts["name"], by=actor)
                self.stdout.write(f"upstream credential {opts['name']} deleted")
                return
            value = None if opts["keep_value"] else self._read_value(opts["value_env"])
            credential, outcome = upstream_credential_set(name=opts["name"], base_url=opts["base_url"],
                                                          value=value, by=actor)
        except FtopsError as exc:
            problems = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.fields.items())
            raise CommandError(exc.message + (f" ({problems})" if problems else "")) from exc
        self.stdout.write(f"upstream credential {credential.name} {outcome} (sent only to {credential.base_url})")

    def _read_value(self, env_name: str | None) -> str:
        if env_name:
            value = os.environ.get(env_name)
            if not value:
                raise CommandError(f"the environment variable {env_name} is not set or empty")
            return value
        if sys.stdin.isatty():
            return getpass.getpass("value (not echoed): ")
        # Piped input: one line; the newline that echo or a file adds is not part of the key.
        return sys.stdin.read().rstrip("\r\n")
