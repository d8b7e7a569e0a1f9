"""System checks that make a misconfigured deployment fail loudly at start-up."""

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured


@register()
def secret_key_set(app_configs, **kwargs):
    try:
        settings.SECRET_KEY  # noqa: B018  (reading it is the check: Django raises when empty)
    except ImproperlyConfigured:
        return [Error("SECRET_KEY is not set.", hint="Set SECRET_KEY in the environment (or CHAIRSIDE_DEMO=1 for the demo).", id="infusion_site.E001")]
    return []
