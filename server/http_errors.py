"""Errors only the HTTP layer raises: about the request as it came over the wire (its token,
its origin, its host, its body's type, size and pace) or this server process's own limits.

The domain errors the jobs raise are in :mod:`jobs.errors`; which answer each error becomes is
decided in :mod:`server.errors`.

    VidcorrectError (jobs.errors)
    ├── Unauthorized          no or a wrong API token / session
    ├── Forbidden             a cross-site request (foreign Origin, Sec-Fetch-Site); an
    │   │                     output not approved yet (``not_approved``)
    │   └── RoleForbidden     a route the user's role may not call
    ├── ClientTooSlow         a request body that came too slowly; the connection is closed
    │   └── UploadTooSlow     an upload stalled or trickled below the minimum rate
    ├── PayloadTooLarge       a body larger than allowed
    ├── MisdirectedRequest    a Host header this service does not answer to
    ├── UnsupportedMedia      a body of a type the route does not read
    └── RetryLater (jobs.errors)
        ├── Throttled         too many requests of a kind from one client
        └── ServerBusy        too many streams or uploads on this process
"""

from __future__ import annotations

from jobs.errors import RetryLater, VidcorrectError


class Unauthorized(VidcorrectError):
    """The API needs a token (``VIDCORRECT_API_TOKEN``) and the request brought none that fits."""

    code = "unauthorized"


class Forbidden(VidcorrectError):
    """The request comes from another site (its ``Origin`` or ``Sec-Fetch-Site`` says so)."""

    code = "forbidden"


class RoleForbidden(Forbidden):
    """The signed-in user's role lacks the permission the route needs (the message names the
    role that has it)."""

    code = "forbidden_role"


class ClientTooSlow(VidcorrectError):
    """A request body did not arrive in time (a JSON body within ``VIDCORRECT_HEADER_TIMEOUT``:
    ``body_too_slow``); the answer closes the connection."""

    code = "too_slow"


class UploadTooSlow(ClientTooSlow):
    """An upload sent too little for too long (``VIDCORRECT_UPLOAD_IDLE_TIMEOUT``,
    ``VIDCORRECT_UPLOAD_MIN_RATE``); it was cut off and its partial file removed."""

    code = "upload_too_slow"


class PayloadTooLarge(VidcorrectError):
    """The upload exceeds ``VIDCORRECT_MAX_UPLOAD_BYTES``, or a JSON body the app's limit."""

    code = "too_large"


class MisdirectedRequest(VidcorrectError):
    """The ``Host`` header names a host this service is not configured to answer to
    (``VIDCORRECT_ALLOWED_HOSTS``): a DNS-rebinding page, or a misconfigured proxy."""

    code = "unknown_host"


class UnsupportedMedia(VidcorrectError):
    """The body is of a type the route does not read: an upload neither multipart nor a raw
    video, or a JSON route's body of another type."""

    code = "unsupported_media"


class Throttled(RetryLater):
    """Too many requests of a kind from one client (wrong sign-in tokens)."""

    code = "throttled"


class ServerBusy(RetryLater):
    """This server process holds as many event streams or uploads as it is allowed."""

    code = "server_busy"
