"""The local front door: what the cloud load balancer does in production.

Routes path prefixes to the function processes and appends the connection's peer address to
X-Forwarded-For, exactly as the load balancer does, so functions read the client address the
same way in both places (WEBMEETING_TRUSTED_PROXY_COUNT).

Usage: python -m infra.frontdoor --port PORT --route /api/pbx/v1=http://127.0.0.1:P1 ...
"""

from __future__ import annotations

import argparse
import json
import time

import aiohttp
from aiohttp import web

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


def make_app(routes: list[tuple[str, str]], limits: dict[str, TokenBuckets] | None = None) -> web.Application:
    """``limits``: path prefix -> per-client-address token buckets (answering 429)."""
    routes = sorted(routes, key=lambda r: -len(r[0]))  # longest prefix first
    limits = limits or {}
    session: dict[str, aiohttp.ClientSession] = {}

    async def on_startup(app: web.Application) -> None:
        session["s"] = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=300))

    async def on_cleanup(app: web.Application) -> None:
        await session["s"].close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        path = request.raw_path
        upstream = next((url for prefix, url in routes if path == prefix or path.startswith(prefix.rstrip("/") + "/")), None)
        if upstream is None:
            error = {"error": {"code": "not_found", "message": "no such endpoint"}}
            return web.Response(status=404, text=json.dumps(error), content_type="application/json")
        peer = request.remote or ""
        for prefix, buckets in limits.items():
            if path.startswith(prefix) and not buckets.allow(peer, time.monotonic()):
                error = {"error": {"code": "rate_limited", "message": "too many requests; retry shortly"}}
                return web.Response(
                    status=429, text=json.dumps(error), content_type="application/json", headers={"Retry-After": "1"}
                )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        prior = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
        data = request.content if request.body_exists else None
        async with session["s"].request(
            request.method, upstream + path, headers=headers, data=data, allow_redirects=False
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
    parser.add_argument("--route", action="append", default=[], help="PREFIX=URL")
    parser.add_argument("--limit", action="append", default=[], help="PREFIX=RATE_PER_S:BURST, per client address")
    args = parser.parse_args()
    routes = [tuple(r.split("=", 1)) for r in args.route]
    limits = {}
    for spec in args.limit:
        prefix, _, numbers = spec.partition("=")
        rate, _, burst = numbers.partition(":")
        limits[prefix] = TokenBuckets(float(rate), float(burst))
    # no access log: paths carry meeting keys and the policy keeps personal data out of logs
    web.run_app(make_app(routes, limits), host=args.host, port=args.port, print=None, handle_signals=True, access_log=None)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
