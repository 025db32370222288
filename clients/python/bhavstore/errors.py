"""Exceptions raised by the bhavstore client.

Every error the server reports becomes a :class:`BhavstoreError` subclass carrying

- ``code``: the server's stable code. REST answers ``{"error": {"code", "message"}}`` and the
  code is passed through (``unauthorized``, ``unknown_feature``, ``stale_value``, ...). Flight
  SQL errors carry a gRPC status; the code is then the status name (``UNAUTHENTICATED``,
  ``NOT_FOUND``, ``INVALID_ARGUMENT``, ...) unless the message names a more precise one
  (``unknown_view`` for ``features_asof: no feature view ...``). Errors the client finds
  itself before asking the server use the REST codes (``unknown_view``, ``unknown_feature``,
  ``bad_request``).
- ``message``: the server's message (or the client's).
- ``status``: the HTTP status (``int``) for REST, the gRPC status name (``str``) for Flight SQL,
  ``None`` for errors found by the client.
- ``protocol``: ``"http"``, ``"flight"`` or ``"client"``.
- ``details``: anything else the answer held (the JSON body of a refused push, ...).

The class follows from the HTTP status or gRPC status:

======================== ============================== ======================================
class                    HTTP                           Flight SQL (gRPC / ADBC)
======================== ============================== ======================================
AuthenticationError      401                            UNAUTHENTICATED
PermissionDeniedError    403                            PERMISSION_DENIED / ADBC UNAUTHORIZED
NotFoundError            404                            NOT_FOUND; ``no feature view``
InvalidRequestError      400, 405, 413, 415, 422        INVALID_ARGUMENT, FAILED_PRECONDITION,
                                                        OUT_OF_RANGE, UNIMPLEMENTED
ConflictError            409                            ALREADY_EXISTS, ABORTED
ResourceExhaustedError   503 ``too_many_*``, 429        RESOURCE_EXHAUSTED
QueryTimeoutError        503 ``timeout``                DEADLINE_EXCEEDED, CANCELLED
ServiceUnavailableError  503 (other), connection errors UNAVAILABLE, ADBC IO
ServerError              500 and other 5xx              INTERNAL, UNKNOWN, DATA_LOSS
======================== ============================== ======================================
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Type, Union

__all__ = [
    "BhavstoreError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "InvalidRequestError",
    "PushRejectedError",
    "ConflictError",
    "ResourceExhaustedError",
    "QueryTimeoutError",
    "ServiceUnavailableError",
    "ServerError",
    "StreamDroppedError",
]


class BhavstoreError(Exception):
    """Base class of every error the client raises for the server (or for a bad request)."""

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        status: Union[int, str, None] = None,
        protocol: str = "client",
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message: str = message
        self.code: Optional[str] = code
        self.status: Union[int, str, None] = status
        self.protocol: str = protocol
        self.details: Any = details

    def __str__(self) -> str:
        where = f"{self.protocol} {self.status}" if self.status is not None else self.protocol
        return f"[{self.code}] {self.message} ({where})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, status={self.status!r})"


class AuthenticationError(BhavstoreError):
    """No credentials, a wrong user or password, or an unknown bearer token."""


class PermissionDeniedError(BhavstoreError):
    """Authenticated, but not allowed: e.g. a push without the ``write`` role."""


class NotFoundError(BhavstoreError):
    """An unknown view, feature, entity, run, or no value as of the requested time."""


class InvalidRequestError(BhavstoreError):
    """The server (or the client) refused the request as malformed."""


class PushRejectedError(InvalidRequestError):
    """Every row of a push was refused (HTTP 422). ``details`` holds the server's answer,
    ``details["rejected"]`` the reason for every row."""


class ConflictError(BhavstoreError):
    """Another writer holds the storage (``another_writer``)."""


class ResourceExhaustedError(BhavstoreError):
    """A server limit was reached (memory, uploads, connections, runs)."""


class QueryTimeoutError(BhavstoreError):
    """The statement or request took longer than the server (or client) allows."""


class ServiceUnavailableError(BhavstoreError):
    """The server cannot be reached or its storage is unavailable."""


class ServerError(BhavstoreError):
    """An internal error of the server."""


class StreamDroppedError(BhavstoreError):
    """The server ended a subscription because the subscriber fell too far behind
    (``code="dropped"``; ``details`` holds the server's event, e.g. ``{"reason", "missed"}``)."""


_HTTP: Dict[int, Type[BhavstoreError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: ResourceExhaustedError,
}


def from_http(status: int, body: Any, fallback_text: str = "") -> BhavstoreError:
    """The exception for an HTTP error answer (``body`` is the parsed JSON, if any)."""
    code: Optional[str] = None
    message = fallback_text.strip() or f"HTTP {status}"
    details: Any = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = err.get("code")
            message = err.get("message") or message
            extra = {k: v for k, v in body.items() if k != "error"}
            details = extra or None
        elif isinstance(err, str):
            code = err
            details = body
        else:
            details = body
    if status == 422 and isinstance(body, dict) and body.get("status") == "rejected":
        reasons = "; ".join(f"row {r.get('index')}: {r.get('reason')}" for r in body.get("rejected", [])[:5])
        return PushRejectedError(
            f"every row was refused ({reasons})", code="rejected", status=status, protocol="http", details=body
        )
    if status == 503:
        if code == "timeout":
            cls: Type[BhavstoreError] = QueryTimeoutError
        elif code is not None and code.startswith("too_many"):
            cls = ResourceExhaustedError
        else:
            cls = ServiceUnavailableError
    elif status in _HTTP:
        cls = _HTTP[status]
    elif status >= 500:
        cls = ServerError
    else:
        cls = BhavstoreError
    return cls(message, code=code or f"http_{status}", status=status, protocol="http", details=details)


_GRPC: Dict[str, Type[BhavstoreError]] = {
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "INVALID_ARGUMENT": InvalidRequestError,
    "FAILED_PRECONDITION": InvalidRequestError,
    "OUT_OF_RANGE": InvalidRequestError,
    "UNIMPLEMENTED": InvalidRequestError,
    "ALREADY_EXISTS": ConflictError,
    "ABORTED": ConflictError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "DEADLINE_EXCEEDED": QueryTimeoutError,
    "CANCELLED": QueryTimeoutError,
    "UNAVAILABLE": ServiceUnavailableError,
    "INTERNAL": ServerError,
    "UNKNOWN": ServerError,
    "DATA_LOSS": ServerError,
}

# ADBC status codes (adbc_driver_manager.AdbcStatusCode) when the message names no gRPC status.
_ADBC: Dict[int, str] = {
    3: "NOT_FOUND",
    4: "ALREADY_EXISTS",
    5: "INVALID_ARGUMENT",
    6: "FAILED_PRECONDITION",
    7: "INVALID_ARGUMENT",
    9: "INTERNAL",
    10: "UNAVAILABLE",
    11: "CANCELLED",
    12: "DEADLINE_EXCEEDED",
    13: "UNAUTHENTICATED",
    14: "PERMISSION_DENIED",
}

_GRPC_PREFIX = re.compile(r"^\s*(?:[A-Z]+:\s*)?([A-Z_]+):\s*(?:\[FlightSQL\]\s*)?(.*)$", re.S)
_TRAILER = re.compile(r"\s*\((?:[A-Za-z]+; [A-Za-z]+)\)(?:\. Vendor code: \d+)?\s*$")


def from_flight(exc: BaseException) -> BhavstoreError:
    """The exception for an ADBC / Flight SQL error."""
    text = str(exc)
    grpc: Optional[str] = None
    message = text
    m = _GRPC_PREFIX.match(text)
    if m and m.group(1) in _GRPC:
        grpc, message = m.group(1), m.group(2)
    elif m and m.group(1) == "IO":
        # "IO: [FlightSQL] connection error: ..." — the server is not reachable.
        grpc, message = "UNAVAILABLE", m.group(2)
    else:
        status_code = getattr(exc, "status_code", None)
        try:
            grpc = _ADBC.get(int(status_code)) if status_code is not None else None
        except (TypeError, ValueError):
            grpc = None
    message = _TRAILER.sub("", message).strip() or text
    cls = _GRPC.get(grpc or "", BhavstoreError)
    code = grpc or "UNKNOWN"
    # The training-set function says "no feature view" as a planning error: it is a lookup miss.
    if "no feature view" in message:
        cls, code = NotFoundError, "unknown_view"
    elif "Schema error: No field named" in message:
        cls, code = NotFoundError, "unknown_column"
    details = {"sqlstate": getattr(exc, "sqlstate", None), "vendor_code": getattr(exc, "vendor_code", None)}
    return cls(message, code=code, status=grpc, protocol="flight", details=details)
