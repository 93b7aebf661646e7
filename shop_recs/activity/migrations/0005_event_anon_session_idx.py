"""A partial index on the anonymous events of a session (merge, erasure).

``activity_event`` is the largest table and ingestion writes to it all the time: on PostgreSQL the
index is built ``CONCURRENTLY`` so inserts are not blocked while it is built (which needs a migration
outside a transaction); other databases build it the ordinary way.
"""

from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            concurrently = schema_editor.connection.vendor == "postgresql"
            schema_editor.add_index(model, self.index, **({"concurrently": True} if concurrently else {}))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            concurrently = schema_editor.connection.vendor == "postgresql"
            schema_editor.remove_index(model, self.index, **({"concurrently": True} if concurrently else {}))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("activity", "0004_erasurerecord"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="event",
            index=models.Index(
                condition=models.Q(("customer__isnull", True)),
                fields=["store", "session_id"],
                name="event_anon_session_idx",
            ),
        ),
    ]
