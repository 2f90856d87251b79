"""The local front door: what the global external HTTPS load balancer does in production.

Built from the route table (``webmeeting.routes``), like terraform's URL map and Cloud Armor
policy: routes the public prefixes to their function processes and answers 404 for everything
else (internal functions such as ``tasks_api`` are never reachable through it), enforces the
per-client rate limits (429 ``rate_limited``, before the function runs), and appends
``<client>,<front door>`` to X-Forwarded-For exactly as the load balancer appends
``<client>,<load balancer>``, so functions read the client address the same way in both places
(``routes.TRUSTED_PROXY_HOPS``).

Usage: python -m infra.frontdoor --port PORT --upstream pbx_api=http://127.0.0.1:P1 ...
"""

from __future__ import annotations

import argparse
import json
import time

import aiohttp
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


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def make_app(upstreams: dict[str, str]) -> web.Application:
    """``upstreams``: function name -> its process's base URL (public functions only are used)."""
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
    args = parser.parse_args()
    upstreams = dict(u.split("=", 1) for u in args.upstream)
    # no access log: paths carry meeting keys and the policy keeps personal data out of logs
    web.run_app(make_app(upstreams), host=args.host, port=args.port, print=None, handle_signals=True, access_log=None)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
