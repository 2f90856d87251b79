"""The local front door: what the global external HTTPS load balancer does in production.

Built from the route table (``webmeeting.routes``), like terraform's URL map and Cloud Armor
policy: routes the public prefixes to their function processes and answers 404 for everything
else (internal functions such as ``tasks_api`` are never reachable through it), enforces the
per-client rate limits (429 ``rate_limited``, before the function runs), and appends
``<client>,<front door>`` to X-Forwarded-For exactly as the load balancer appends
``<client>,<load balancer>``, so functions read the client address the same way in both places
(``routes.TRUSTED_PROXY_HOPS``).

Routes behind Identity-Aware Proxy in production (``routes.behind_iap``: the operator console)
get the local stand-in: a dev sign-in (HTTP Basic: any address as the user name, the password
``make run`` prints; the browser holds it for the session, no cookie), after which the request
carries IAP's header, ``x-goog-iap-jwt-assertion``, signed with the launcher's dev key, with the
same claims IAP puts there. A header of that name from the client is dropped, as IAP drops it.

Usage: python -m infra.frontdoor --port PORT --upstream pbx_api=http://127.0.0.1:P1 ...
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import jwt
from aiohttp import web

from webmeeting import routes
from webmeeting.domain.ratelimit import TokenBuckets

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
OWN_ADDRESS = "127.0.0.1"  # what the load balancer appends as its own address
IAP_HEADERS = {"x-goog-iap-jwt-assertion", "x-goog-authenticated-user-email", "x-goog-authenticated-user-id", "authorization"}
IAP_ASSERTION_S = 600  # how long an assertion is good for (IAP's are 10 minutes)
SIGN_IN_REALM = 'Basic realm="webmeeting operator console (dev sign-in)", charset="UTF-8"'


@dataclass(frozen=True)
class DevSignIn:
    """The local stand-in for IAP: who may sign in (the password), and how the header is signed."""

    key_pem: bytes
    kid: str
    audience: str
    password: str

    def assertion(self, authorization: str | None, now: float) -> str | None:
        """IAP's signed header for a Basic ``authorization`` with the dev password, else None."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic" or len(encoded) > 1024:
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not user or not hmac.compare_digest(password.encode(), self.password.encode()):
            return None
        claims = {
            "iss": "https://cloud.google.com/iap",
            "aud": self.audience,
            "email": user.strip().lower(),
            "sub": "accounts.google.com:dev-" + user.strip().lower(),
            "iat": int(now),
            "exp": int(now) + IAP_ASSERTION_S,
        }
        return jwt.encode(claims, self.key_pem, algorithm="ES256", headers={"kid": self.kid})


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def make_app(upstreams: dict[str, str], sign_in: DevSignIn | None = None) -> web.Application:
    """``upstreams``: function name -> its process's base URL (public functions only are used).
    ``sign_in``: the stand-in for IAP (without it, routes behind IAP answer 404)."""
    public = routes.public_routes()
    buckets = {limit.name: TokenBuckets(limit.rate_per_s, float(limit.count)) for limit in routes.RATE_LIMITS}
    session: dict[str, aiohttp.ClientSession] = {}

    async def on_startup(app: web.Application) -> None:
        session["s"] = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=300))

    async def on_cleanup(app: web.Application) -> None:
        await session["s"].close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        path = request.path  # decoded, as the load balancer's URL map matches it
        route = routes.route_for(path)
        if route is None or route not in public or route.function not in upstreams:
            return _error(404, "not_found", "no such endpoint")
        peer = request.remote or ""
        limit = routes.limit_for(path)
        if limit is not None and not buckets[limit.name].allow(peer, time.monotonic()):
            return _error(429, "rate_limited", "too many requests; retry shortly", {"Retry-After": "1"})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if routes.behind_iap(route):
            if sign_in is None:
                return _error(404, "not_found", "no such endpoint")
            assertion = sign_in.assertion(request.headers.get("Authorization"), time.time())
            if assertion is None:
                return _error(401, "unauthenticated", "sign in", {"WWW-Authenticate": SIGN_IN_REALM})
            headers = {k: v for k, v in headers.items() if k.lower() not in IAP_HEADERS}
            headers["x-goog-iap-jwt-assertion"] = assertion
        prior = request.headers.get("X-Forwarded-For")
        appended = f"{peer},{OWN_ADDRESS}"
        headers["X-Forwarded-For"] = f"{prior},{appended}" if prior else appended
        data = request.content if request.body_exists else None
        async with session["s"].request(
            request.method, upstreams[route.function] + request.raw_path, headers=headers, data=data, allow_redirects=False
        ) as resp:
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
            body = await resp.read()
            return web.Response(status=resp.status, headers=out_headers, body=body)

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", action="append", default=[], help="FUNCTION=URL")
    parser.add_argument("--iap-key", default="", help="the dev sign-in's signing key (PEM) and its kid: FILE")
    parser.add_argument("--iap-kid", default="dev")
    parser.add_argument("--iap-audience", default="")
    parser.add_argument("--iap-password-file", default="", help="a file holding the dev sign-in's password")
    args = parser.parse_args()
    upstreams = dict(u.split("=", 1) for u in args.upstream)
    sign_in = None
    if args.iap_key and args.iap_password_file:
        password = Path(args.iap_password_file).read_text().strip()
        sign_in = DevSignIn(Path(args.iap_key).read_bytes(), args.iap_kid, args.iap_audience, password)
    # no access log: paths carry meeting keys and the policy keeps personal data out of logs
    web.run_app(make_app(upstreams, sign_in), host=args.host, port=args.port, print=None, handle_signals=True, access_log=None)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
