from django.apps import AppConfig


class VendureConfig(AppConfig):
    name = "vendure"
    verbose_name = "Vendure shops"

    def ready(self) -> None:
        from vendure import receivers

        receivers.connect()
