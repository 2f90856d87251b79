"""The egress guard: every call the platform makes to an address a customer controls (a PBX's
FQDN) goes through here.

- The name is resolved once (dnspython; ``WEBMEETING_DNS_SERVER`` names the resolver), and the
  call connects to the address that was checked, so a second lookup cannot rebind it; TLS still
  verifies the certificate for the name (SNI and hostname check).
- Refused unless every resolved address is public: loopback, private, link-local (cloud metadata
  at 169.254.169.254), CGNAT (100.64.0.0/10), multicast, reserved, unspecified and their IPv6
  counterparts (incl. IPv4-mapped, unique-local, site-local) never are.
- No redirects are followed (a 3xx is an answer, and refused); the answer is capped in size and
  time.
- Locally the guard stays on: ``WEBMEETING_EGRESS_ALLOW`` admits exact ``host:port`` pairs (the
  PBX simulator's) and nothing else, not even other public addresses.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass
from typing import Any

import certifi
import dns.exception
import dns.resolver
import urllib3

from webmeeting import runtime

MAX_RESPONSE_BYTES = 256 * 1024  # a dial-in answer is a few hundred bytes
CONNECT_TIMEOUT_S = 3.0
TOTAL_TIMEOUT_S = 8.0  # from the first byte sent to the last byte read
CGNAT = ipaddress.ip_network("100.64.0.0/10")


class EgressRefused(Exception):
    """The call was not made or its answer not accepted: unresolvable name, a non-public
    address, no answer in time, an answer too large, a redirect, or an error status."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Policy:
    scheme: str = "https"
    port: int = 443
    allow: frozenset[str] = frozenset()  # exact "host:port" pairs; when set, the only admitted ones
    dns_server: str = ""  # host:port of the resolver; empty: the system's

    @classmethod
    def from_env(cls) -> Policy:
        b = runtime.backends()
        port = b.pbx_port or (443 if b.pbx_scheme == "https" else 80)
        return cls(b.pbx_scheme, port, frozenset(b.egress_allow), b.dns_server)


def is_public(address: str) -> bool:
    """Whether ``address`` is a globally routable unicast address."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_private:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and (ip.is_site_local or ip.sixtofour is not None or ip.teredo is not None):
        return False  # tunnels that embed an IPv4 address: not worth the risk
    return ip.is_global


def admitted(address: str, port: int, policy: Policy) -> bool:
    if policy.allow:
        return f"{address}:{port}" in policy.allow
    return is_public(address)


def resolve(fqdn: str, policy: Policy | None = None) -> list[str]:
    """The name's IPv4 and IPv6 addresses (raises EgressRefused when it has none)."""
    policy = policy or Policy.from_env()
    resolver = dns.resolver.Resolver(configure=not policy.dns_server)
    if policy.dns_server:
        host, _, port = policy.dns_server.partition(":")
        resolver.nameservers = [host]
        resolver.port = int(port or 53)
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            addresses += [str(r) for r in resolver.resolve(fqdn, rdtype, lifetime=CONNECT_TIMEOUT_S)]
        except dns.resolver.NXDOMAIN as exc:
            raise EgressRefused(f"{fqdn} does not resolve: NXDOMAIN") from exc
        except dns.exception.DNSException:
            continue  # no record of this type (or this type's lookup failed): try the other
    if not addresses:
        raise EgressRefused(f"{fqdn} does not resolve")
    return addresses


def request(method: str, fqdn: str, path_with_query: str, headers: dict[str, str], body: bytes = b"") -> Reply:
    """One guarded HTTP(S) call to ``fqdn``; a 2xx answer, or EgressRefused."""
    policy = Policy.from_env()
    addresses = resolve(fqdn, policy)
    if not all(admitted(a, policy.port, policy) for a in addresses):
        raise EgressRefused(f"{fqdn} resolves to an address the platform does not call")
    address = addresses[0]
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=TOTAL_TIMEOUT_S)
    pool: urllib3.HTTPConnectionPool
    if policy.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            policy.port,
            server_hostname=fqdn,
            assert_hostname=fqdn,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            timeout=timeout,
            retries=False,
            maxsize=1,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, policy.port, timeout=timeout, retries=False, maxsize=1)
    deadline = time.monotonic() + TOTAL_TIMEOUT_S
    try:
        resp = pool.urlopen(
            method,
            path_with_query,
            body=body or None,
            headers={**headers, "Host": fqdn},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            data = b""
            for chunk in resp.stream(16 * 1024):
                data += chunk
                if len(data) > MAX_RESPONSE_BYTES:
                    raise EgressRefused(f"{fqdn} answered more than {MAX_RESPONSE_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise EgressRefused(f"{fqdn} answered too slowly")
        finally:
            resp.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise EgressRefused(f"{fqdn} did not answer: {exc.__class__.__name__}") from exc
    finally:
        pool.close()
    if not 200 <= resp.status < 300:
        raise EgressRefused(f"{fqdn} answered {resp.status}")  # 3xx included: redirects are not followed
    return Reply(resp.status, data)
