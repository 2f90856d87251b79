"""The platform's topology as one table: which path goes to which function, whether the load
balancer exposes it, who may call it, and the per-client rate limits in front of it.

Everything that routes or admits requests is generated from this module or checked against it:
- the local front door (``infra.frontdoor``, started by ``infra.launcher``) routes the public
  prefixes, answers 404 for the rest, appends X-Forwarded-For as the load balancer does and
  enforces ``RATE_LIMITS``;
- ``terraform/generated/routes.json`` (``make terraform-data``) feeds terraform's global external
  HTTPS load balancer (URL map, serverless NEGs), the functions' ingress settings, the trusted
  hop count and the Cloud Armor policy's rate-based rules;
- ``tests/deploy`` fail when terraform drifts from it, ``tests/security`` when the launched
  platform does.

Pure: no I/O, no settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Exposure(StrEnum):
    PUBLIC = "public"  # behind the load balancer (ingress: internal and load balancer only)
    INTERNAL = "internal"  # never routed by the load balancer (ingress: internal only)


class Auth(StrEnum):
    """How a route authenticates its caller (checked by the function itself, or by IAM)."""

    PBX_HMAC = "pbx_hmac"  # signed PBX requests (contract); activation: license key + source IP
    JOIN_TOKEN = "join_token"  # noqa: S105 - a method name, not a secret; short-lived ES256 tokens from /join; the join itself: the meeting link
    MEETING_LINK = "meeting_link"  # an unguessable meeting key in the path
    MCU_IDENTITY = "mcu_identity"  # production: Google-signed ID token of the MCU's account; local: per-MCU secret
    TASKS_OIDC = "tasks_oidc"  # Cloud Tasks' OIDC token of the tasks account (IAM invoker); local: task secret
    SCHEDULER_OIDC = "scheduler_oidc"  # Cloud Scheduler's OIDC token of the scheduler account; local: task secret
    OPERATOR_IAP = "operator_iap"  # production: Identity-Aware Proxy's signed header (Google sign-in) + a role in Firestore; local: the front door's dev sign-in
    NONE = "none"  # static assets


@dataclass(frozen=True)
class Route:
    prefix: str  # a path prefix: the path itself or anything below it
    function: str  # the Cloud Function (folder under functions/) serving it
    exposure: Exposure
    auth: tuple[Auth, ...]

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix.rstrip("/") + "/")


ROUTES: tuple[Route, ...] = (
    Route("/api/pbx/v1", "pbx_api", Exposure.PUBLIC, (Auth.PBX_HMAC,)),
    Route("/api/meet/v1", "meeting_api", Exposure.PUBLIC, (Auth.MEETING_LINK, Auth.JOIN_TOKEN)),
    Route("/api/mcu/v1", "mcu_api", Exposure.PUBLIC, (Auth.MCU_IDENTITY,)),
    Route("/meet", "meeting_page", Exposure.PUBLIC, (Auth.MEETING_LINK,)),
    Route("/assets", "meeting_page", Exposure.PUBLIC, (Auth.NONE,)),
    Route("/console", "console", Exposure.PUBLIC, (Auth.OPERATOR_IAP,)),
    Route("/tasks/v1", "tasks_api", Exposure.INTERNAL, (Auth.TASKS_OIDC, Auth.SCHEDULER_OIDC)),
)

# The global external Application Load Balancer appends "<client>,<load balancer>" to
# X-Forwarded-For; the client's address is therefore the second entry from the right. The local
# front door appends the same two entries.
TRUSTED_PROXY_HOPS = 2

# Cloud Armor's rate-based rules accept only these intervals (seconds).
ARMOR_INTERVALS_S = (10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600)


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` requests per ``interval_s`` per client address on paths under
    ``prefix``; more answer 429 ``rate_limited``. Locally a token bucket refilling at
    count/interval per second with a burst of ``count``; in production a Cloud Armor
    rate-based throttle rule with the same numbers."""

    name: str
    prefix: str
    count: int
    interval_s: int
    priority: int  # Cloud Armor rule priority (lower is evaluated first); unique

    @property
    def rate_per_s(self) -> float:
        return self.count / self.interval_s

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix.rstrip("/") + "/")


# Most specific first: a request counts against the first limit it matches (Cloud Armor stops at
# the first matching rule; the front door does the same).
RATE_LIMITS: tuple[RateLimit, ...] = (
    # joins: a participant joins (and rejoins after a network change) a few times a meeting; a
    # building behind one NAT address may hold a whole meeting
    RateLimit("join", "/api/meet/v1/join", 300, 60, 1000),
    # the meeting API under a link (files, polls, documents, invitations)
    RateLimit("meeting-api", "/api/meet/v1", 1200, 60, 1010),
    # meeting links: guessing a 96-bit key is hopeless; this stops floods of tries
    RateLimit("meeting-links", "/meet", 600, 60, 1020),
    # PBX calls: syncs, meetings, reports (50 requests/s sustained)
    RateLimit("pbx-api", "/api/pbx/v1", 3000, 60, 1030),
    # the operator console: a few people clicking through pages (behind IAP already)
    RateLimit("console", "/console", 300, 60, 1040),
)


@dataclass(frozen=True)
class Sizing:
    """How one function runs in production, and locally: ``concurrency`` requests at once per
    instance (its threads: the code is thread-safe; locally the same number of threads), up to
    ``max_instances``, each with ``cpu`` vCPUs (more than one request at once needs a whole one)."""

    concurrency: int
    max_instances: int
    cpu: float
    memory: str
    timeout_s: int


# From bench/portal_load.py (docs/benchmarks.md): a request of the meeting API takes ~10-30 ms,
# most of it waiting on Firestore, a few ms of CPU; eight at once keep one vCPU busy without
# queueing. The tasks function's sweeps are long and I/O-bound; they hold leases, so several may run.
SIZING: dict[str, Sizing] = {
    "pbx_api": Sizing(concurrency=8, max_instances=20, cpu=1, memory="512Mi", timeout_s=60),
    "meeting_api": Sizing(concurrency=8, max_instances=20, cpu=1, memory="512Mi", timeout_s=60),
    "mcu_api": Sizing(concurrency=8, max_instances=20, cpu=1, memory="512Mi", timeout_s=60),
    "meeting_page": Sizing(concurrency=16, max_instances=10, cpu=1, memory="512Mi", timeout_s=60),
    "tasks_api": Sizing(concurrency=4, max_instances=10, cpu=1, memory="1Gi", timeout_s=540),
    "console": Sizing(concurrency=4, max_instances=2, cpu=1, memory="512Mi", timeout_s=60),
}


def route_for(path: str) -> Route | None:
    """The route serving ``path`` (longest prefix), or None."""
    best: Route | None = None
    for route in ROUTES:
        if route.matches(path) and (best is None or len(route.prefix) > len(best.prefix)):
            best = route
    return best


def public_routes() -> list[Route]:
    return [r for r in ROUTES if r.exposure is Exposure.PUBLIC]


def behind_iap(route: Route) -> bool:
    """Whether the load balancer puts Identity-Aware Proxy in front of the route (the operator
    console); locally the front door's dev sign-in stands in for it."""
    return Auth.OPERATOR_IAP in route.auth


def functions() -> dict[str, Exposure]:
    """Each function and its exposure: public when any of its routes is."""
    out: dict[str, Exposure] = {}
    for r in ROUTES:
        if out.get(r.function) is not Exposure.PUBLIC:
            out[r.function] = r.exposure
    return out


def limit_for(path: str) -> RateLimit | None:
    """The rate limit a request to ``path`` counts against (the first that matches), or None."""
    return next((limit for limit in RATE_LIMITS if limit.matches(path)), None)


def document() -> dict[str, object]:
    """terraform/generated/routes.json."""
    return {
        "trusted_proxy_hops": TRUSTED_PROXY_HOPS,
        "routes": [
            {"prefix": r.prefix, "function": r.function, "exposure": str(r.exposure), "auth": [str(a) for a in r.auth]}
            for r in ROUTES
        ],
        "functions": {name: str(exposure) for name, exposure in sorted(functions().items())},
        "iap_functions": sorted({r.function for r in ROUTES if behind_iap(r)}),
        "sizing": {
            name: {
                "concurrency": s.concurrency,
                "max_instances": s.max_instances,
                "cpu": str(s.cpu).removesuffix(".0"),
                "memory": s.memory,
                "timeout_s": s.timeout_s,
            }
            for name, s in sorted(SIZING.items())
        },
        "rate_limits": [
            {"name": x.name, "prefix": x.prefix, "count": x.count, "interval_s": x.interval_s, "priority": x.priority}
            for x in RATE_LIMITS
        ],
    }
