"""``TriggerEvent`` now belongs to ``ftops.loop`` (retraining triggers read evaluation rows,
which sit above datasets). State only: the table stays where it is, with its rows, and
``loop.0002_rename_trigger_event_table`` renames it afterwards."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("datasets", "0005_example_search_trigram"),
        ("loop", "0001_take_over_trigger_events"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="TriggerEvent")],
            database_operations=[],
        ),
    ]
