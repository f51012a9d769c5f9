from django.apps import AppConfig


class VendureConfig(AppConfig):
    name = "vendure"
    verbose_name = "Vendure shops"
