"""Cloud Function ``meeting_page``: serves meeting links (``/meet/<key>``,
``/meet/<vanity_name>/<slug>``) while the meeting exists, 404 once it or its extension is gone,
and the page's own scripts and styles under ``/assets/`` (no CDN).

Never sets a cookie; the key is in the URL, so the page sends no Referer.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import flask
import functions_framework
from jinja2 import Environment, FileSystemLoader, select_autoescape

from webmeeting import http, runtime
from webmeeting.adapters import mcu_identity
from webmeeting.services.meetings import resolve_key, resolve_vanity

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())

SECURITY_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(self), microphone=(self)",
}
GOOGLE_STORAGE = "https://storage.googleapis.com"  # where signed document URLs point (locally: the emulator)
ASSET_NAME = re.compile(r"^(vendor/)?[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9]{1,8}){1,3}$")  # pdf.worker.min.mjs


def csp() -> str:
    """The page may open sockets to the registered MCUs and nothing else (no ``ws:``/``wss:``
    wildcard): their origins come from the MCU registry the portal authenticates MCUs by."""
    mcus = sorted({f"{u.scheme}://{u.netloc}" for u in (urlsplit(m.url) for m in mcu_identity.registry().values())})
    return (
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; "
        f"connect-src 'self' {' '.join([*mcus, runtime.backends().storage_emulator_host or GOOGLE_STORAGE])}; frame-ancestors 'none'; base-uri 'none'"
    )


def _page(template: str, status: int, **ctx: object) -> flask.Response:
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": csp()}
    return flask.Response(_env.get_template(template).render(**ctx), status=status, headers=headers)


STATIC_DIR = Path(__file__).parent / "assets"  # not /static: Flask itself owns that route
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
VENDOR = {  # npm packages the page uses, served from this function (no CDN)
    "pdf.min.mjs": Path(__file__).parent / "node_modules" / "pdfjs-dist" / "build" / "pdf.min.mjs",
    "pdf.worker.min.mjs": Path(__file__).parent / "node_modules" / "pdfjs-dist" / "build" / "pdf.worker.min.mjs",
}


def _static(name: str) -> flask.Response:
    if not ASSET_NAME.match(name):  # NULs, encoded slashes, dot segments: never a file name of ours
        return _page("not_found.html", 404)
    if name.startswith("vendor/") and name.removeprefix("vendor/") in VENDOR:
        path = VENDOR[name.removeprefix("vendor/")]
    else:
        path = (STATIC_DIR / name).resolve()
        if path.parent != STATIC_DIR.resolve():
            return _page("not_found.html", 404)
    if path.suffix not in STATIC_TYPES or not path.is_file():
        return _page("not_found.html", 404)
    headers = {**SECURITY_HEADERS, "Content-Type": STATIC_TYPES[path.suffix], "Cache-Control": "public, max-age=300"}
    headers["Content-Security-Policy"] = csp()  # the pdf.js worker runs under its script's policy
    return flask.Response(path.read_bytes(), headers=headers)


def _asset(request: flask.Request, m: re.Match[str]) -> flask.Response:
    return _static(m.group(1))


def _meeting(request: flask.Request, m: re.Match[str]) -> flask.Response:
    parts = [unquote(p) for p in m.group(1).split("/")]
    view = resolve_key(parts[0]) if len(parts) == 1 else resolve_vanity(parts[0], parts[1])
    return _page("meeting.html", 200, view=view)


def _error(status: int, code: str, message: str) -> flask.Response:
    """People get a page; only a wrong method (no browser sends one) gets the JSON error."""
    if status == 405:
        return http.error_response(status, code, message)
    return _page("not_found.html", 500 if status >= 500 else 404)


PAGE = {"GET", "HEAD"}
ROUTES = http.Router(
    "",
    [
        http.route("/assets/(.*)", PAGE, _asset),
        http.route("/meet/([^/]+(?:/[^/]+)?)/?", PAGE, _meeting),
        http.route("/.*", PAGE, lambda request, m: _error(404, "not_found", "no such page")),
    ],
    render_error=_error,
)


@functions_framework.http
def meeting_page(request: flask.Request) -> flask.Response:
    return ROUTES(request)
