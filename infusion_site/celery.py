"""The Celery application. Settings come from Django settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "infusion_site.settings")

app = Celery("infusion_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
