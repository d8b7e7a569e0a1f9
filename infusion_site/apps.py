from django.apps import AppConfig


class SiteConfig(AppConfig):
    name = "infusion_site"
    verbose_name = "Chairside site"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
