from django.apps import AppConfig


class EtaConfig(AppConfig):
    name = "eta"
    verbose_name = "Arrival estimates"
