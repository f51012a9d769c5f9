from django.db import migrations


class Migration(migrations.Migration):
    """DriverSocket moves to the availability app (state only: the table stays)."""

    dependencies = [("offers", "0006_take_back_stale_accepted_offers"), ("availability", "0001_driversocket_from_offers")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="DriverSocket")], database_operations=[]),
    ]
