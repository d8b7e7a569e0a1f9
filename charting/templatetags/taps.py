"""`{% tap_key %}`: the hidden idempotency key of a write form (RELIABILITY CON-2).

Rendered fresh with every form, so a page without JavaScript that is
submitted twice (double tap, browser retry) sends the same key twice and the
server writes once. With JavaScript, static/js/chart.js puts a new key in for
every tap and keeps it for that tap's retries."""

import uuid

from django import template
from django.utils.html import format_html

register = template.Library()

FIELD = "idempotency_key"


@register.simple_tag
def tap_key() -> str:
    return format_html('<input type="hidden" name="{}" value="{}" data-tap-key>', FIELD, uuid.uuid4())
