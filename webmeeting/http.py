"""The HTTP edge shared by the Cloud Functions: error bodies, status table, body limits,
the client's address.

HTTP status codes appear here and in the entry points only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import flask
from pydantic import BaseModel, ValidationError

from webmeeting import errors

log = logging.getLogger("webmeeting.http")

STATUS: dict[type[errors.WebmeetingError], int] = {
    errors.InvalidRequest: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}

JSON_TYPE = "application/json; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store"}


def status_for(exc: errors.WebmeetingError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


def json_response(payload: Any, status: int = 200) -> flask.Response:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json()
    else:
        body = json.dumps(payload, separators=(",", ":"))
    return flask.Response(body, status=status, headers={"Content-Type": JSON_TYPE, **NO_STORE})


def error_response(status: int, code: str, message: str) -> flask.Response:
    return json_response({"error": {"code": code, "message": message}}, status)


def from_error(exc: errors.WebmeetingError) -> flask.Response:
    return error_response(status_for(exc), exc.code, exc.message)


def internal_error(exc: BaseException) -> flask.Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal", "internal error; it has been logged")


def read_body(request: flask.Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes (declared or actual)."""
    if request.content_length is not None and request.content_length > limit:
        raise errors.TooLarge(f"body over the limit of {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise errors.TooLarge(f"body over the limit of {limit} bytes")
    return data


def parse(model: type[BaseModel], body: bytes) -> Any:
    if not body.strip():
        raise errors.InvalidRequest("a JSON body is required")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise errors.InvalidRequest(f"{where}: {first['msg']}") from None


def client_ip(request: flask.Request, trusted_proxy_count: int) -> str:
    """The caller's address as the trusted front end reports it.

    Each trusted proxy (the cloud load balancer in production, the local front door) appends
    the address it received the connection from to X-Forwarded-For. Entries further left were
    supplied by the client and are never trusted.
    """
    if trusted_proxy_count <= 0:
        return request.remote_addr or ""
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    if len(hops) < trusted_proxy_count:
        return request.remote_addr or ""
    return hops[-trusted_proxy_count]


def request_target(request: flask.Request) -> str:
    """The request target exactly as sent (path and query), as the signature covers it."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    qs = request.query_string.decode("latin-1")
    path = request.environ.get("PATH_INFO", request.path)
    return f"{path}?{qs}" if qs else path


# --- one route table and one error wrapper per function ---------------------------------------------

Handler = Callable[[flask.Request, "re.Match[str]"], flask.Response]


@dataclass(frozen=True)
class Route:
    """``pattern`` (a regular expression) must match the whole path below the function's
    prefix; its groups reach the handler through the match."""

    pattern: str
    methods: frozenset[str]
    handler: Handler
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern))


def route(pattern: str, methods: Iterable[str], handler: Handler) -> Route:
    return Route(pattern, frozenset(methods), handler)


class Router:
    """A function's routes and its one error wrapper: an unknown path is 404 and a known path
    with another method 405 (before anything else runs), the project's errors become the
    contract's error body, anything else is logged and a bare 500 (never a stack trace)."""

    def __init__(
        self, prefix: str, routes: list[Route], render_error: Callable[[int, str, str], flask.Response] = error_response
    ) -> None:
        self.prefix = prefix
        self.routes = routes
        self.render_error = render_error  # (status, code, message) -> the response (a page may render HTML)

    def path(self, request: flask.Request) -> str:
        return request.path[len(self.prefix) :] if request.path.startswith(self.prefix) else request.path

    def __call__(self, request: flask.Request) -> flask.Response:
        try:
            return self.dispatch(request)
        except errors.WebmeetingError as exc:
            return self.render_error(status_for(exc), exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - the edge: log it, never show a stack trace
            log.exception("unhandled error", exc_info=exc)
            return self.render_error(500, "internal", "internal error; it has been logged")

    def dispatch(self, request: flask.Request) -> flask.Response:
        path = self.path(request)
        allowed: set[str] = set()
        for r in self.routes:
            m = r.regex.fullmatch(path)
            if m is None:
                continue
            if request.method in r.methods:
                return r.handler(request, m)
            allowed |= r.methods
        if allowed:
            resp = self.render_error(405, "method_not_allowed", f"{request.method} is not allowed here")
            resp.headers["Allow"] = ", ".join(sorted(allowed))
            return resp
        raise errors.NotFound("no such endpoint")
