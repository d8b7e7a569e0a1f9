from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _grant_app_role(sender, using, **kwargs):
    from django.db import connections

    from .dbroles import apply_grants

    apply_grants(connections[using])


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (log-in, log-out and privilege-change audit rows)

        # After every migrate (and every test-database flush): tables added
        # since get chairside_app's grants (audit/dbroles.py).
        post_migrate.connect(_grant_app_role, sender=self, dispatch_uid="audit.grant_app_role")
