"""Trigram indexes behind the example search (``q`` is a case-insensitive substring match).

Django compiles ``icontains`` on PostgreSQL to ``UPPER(col::text) LIKE UPPER(%s)``, so the GIN
indexes are on the same ``UPPER(...)`` expressions; a plain B-tree cannot serve ``LIKE '%...%'``.
Other databases have no pg_trgm: there the migration does nothing.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

INDEXES = {
    "ix_example_query_trgm": "user_query",
    "ix_example_explanation_trgm": "explanation",
}


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON datasets_trainingexample "
            f"USING gin (UPPER({column}) gin_trgm_ops)"
        )


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ("datasets", "0004_trainingexample_tool_versions"),
    ]

    operations = [migrations.RunPython(create, drop)]
