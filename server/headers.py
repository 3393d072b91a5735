"""Security headers on every response: the page, its static files, JSON and downloads alike;
and ``Cache-Control: no-store`` on everything under ``/api/`` (originals, outputs, frames,
event streams, JSON with patient file names): no browser or proxy keeps a copy.

aiohttp answers a request it cannot parse at all (400, plain text) itself, before any route:
that answer passes no hook of the application and carries none of these headers.
"""

from __future__ import annotations

from aiohttp import web

#: Scripts only from this origin (ES modules in static/js, no inline script), no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

API_PREFIX = "/api/"
NO_STORE = "no-store"


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: set the headers unless a handler chose its own."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(API_PREFIX):  # patient media and data: never stored
        response.headers["Cache-Control"] = NO_STORE
