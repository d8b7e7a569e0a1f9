from django.apps import AppConfig


class SiteConfig(AppConfig):
    name = "infusion_site"
    verbose_name = "Chairside site"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in

        from . import checks  # noqa: F401  (registers the system checks)
        from .accounts import audit_lockout
        from .middleware import start_session_clock

        user_locked_out.connect(audit_lockout, dispatch_uid="chairside-audit-lockout")
        user_logged_in.connect(start_session_clock, dispatch_uid="chairside-session-clock")
