"""Correlation ids: every HTTP request gets a request id (32 hex digits).

It is on the request (`request.request_id`), in the `X-Request-ID` response
header, in every audit row the request writes, in every log record written
while it is served (audit.logging.RequestIdFilter) and on the error page
(PHI-3), so a nurse reading "reference 3f2a..." to the help desk leads to
the log lines and the audit row of that request. An id sent by the client is
never trusted: it is always generated here.
"""

from __future__ import annotations

import uuid

from . import context


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = uuid.uuid4().hex
        token = context._request.set(context.RequestInfo(request_id=request.request_id, remote_addr=request.META.get("REMOTE_ADDR") or None, request=request))
        try:
            response = self.get_response(request)
        finally:
            context._request.reset(token)
        response["X-Request-ID"] = request.request_id
        return response
