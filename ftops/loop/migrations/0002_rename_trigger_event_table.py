"""Rename ``datasets_triggerevent`` to the loop's own table name, rows and ids kept.

Runs after datasets has let go of the model, so no two apps ever claim the table at once.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("loop", "0001_take_over_trigger_events"),
        ("datasets", "0006_trigger_events_moved_to_loop"),
    ]

    operations = [
        migrations.AlterModelTable(name="triggerevent", table=None),
    ]
