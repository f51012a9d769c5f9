import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """The socket presence rows belong to availability (it owns every write of a driver's
    presence): the model moves here, the table stays as it is (state only, nothing is copied)."""

    initial = True

    dependencies = [("offers", "0006_take_back_stale_accepted_offers"), ("dispatch", "0014_reassignment_reasons_by_ops")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="DriverSocket",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("channel_name", models.CharField(help_text="The channel layer's name of the socket's consumer", max_length=255, unique=True)),
                        ("opened_at", models.DateTimeField()),
                        ("seen_at", models.DateTimeField()),
                        ("driver", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="sockets", to="dispatch.driver")),
                    ],
                    options={
                        "db_table": "offers_driversocket",
                        "indexes": [
                            models.Index(fields=["driver", "seen_at"], name="driversocket_driver_seen"),
                            models.Index(fields=["seen_at"], name="driversocket_seen"),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
