"""The loop takes over ``TriggerEvent`` from datasets without copying a row.

State only: the model enters the loop app still pointing at the table datasets created
(``datasets_triggerevent``). datasets' ``0006_trigger_events_moved_to_loop`` then drops the
model from its own state (no database change either), and ``0002`` renames the table.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("catalog", "0001_initial"),
        ("datasets", "0002_curationrun_datasetmembership_datasetversion_and_more"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="TriggerEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("kind", models.CharField(choices=[("high_quality_examples", "New high-quality examples"),
                                                           ("error_pattern", "Recurring error pattern"),
                                                           ("stale_accuracy", "No accuracy gain")],
                                                  db_index=True, max_length=32)),
                        ("fingerprint", models.CharField(blank=True, help_text="What the trigger is about, for dedupe",
                                                         max_length=200)),
                        ("reason", models.TextField()),
                        ("details", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("service", models.ForeignKey(blank=True, null=True,
                                                      on_delete=django.db.models.deletion.CASCADE,
                                                      related_name="triggers", to="catalog.service")),
                    ],
                    options={"ordering": ["-created_at", "-id"], "db_table": "datasets_triggerevent"},
                ),
            ],
            database_operations=[],
        ),
    ]
