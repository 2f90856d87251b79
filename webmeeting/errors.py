"""The one error tree of the platform.

Adapters translate what they catch into these (``raise NotFound(...) from exc``);
HTTP entry points map them to status codes through ``webmeeting.http.STATUS``::

    WebmeetingError
    ├── InvalidRequest      malformed JSON, wrong types, unknown fields, out of range
    ├── Unauthenticated     bad/missing signature, stale timestamp, reused nonce, unknown PBX
    ├── Forbidden
    │   ├── LicenseInvalid  unknown, expired, revoked license or feature not licensed
    │   └── IpMismatch      request from an IP other than the PBX's registered one
    ├── NotFound            unknown meeting / report
    ├── Conflict            FQDN bound elsewhere, vanity taken
    │   └── WriteConflict   a document to create exists, or a transaction lost its race (the store)
    ├── TooLarge            body over the limit
    ├── RateLimited
    └── Unavailable         no MCU can take the meeting right now
"""

from __future__ import annotations


class WebmeetingError(Exception):
    """Base class. ``code`` is the contract's snake_case error code."""

    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(WebmeetingError):
    code = "invalid_request"


class Unauthenticated(WebmeetingError):
    code = "unauthenticated"


class Forbidden(WebmeetingError):
    code = "forbidden"


class LicenseInvalid(Forbidden):
    code = "license_invalid"


class IpMismatch(Forbidden):
    code = "ip_mismatch"


class NotFound(WebmeetingError):
    code = "not_found"


class Conflict(WebmeetingError):
    code = "conflict"


class WriteConflict(Conflict):
    """The store refused a write: a document that must be new exists, or a concurrent
    transaction changed what this one read (raised by ``adapters.firestore``)."""


class TooLarge(WebmeetingError):
    code = "too_large"


class RateLimited(WebmeetingError):
    code = "rate_limited"


class Unavailable(WebmeetingError):
    code = "unavailable"
