"""Calls from the platform to a PBX (``https://{pbx_fqdn}/webmeeting/v1/...``), signed like the
PBX's own calls. Locally, FQDNs resolve through the platform's DNS server
(``WEBMEETING_DNS_SERVER``) and PBXs answer plain HTTP on ``WEBMEETING_PBX_PORT``."""

from __future__ import annotations

import os
import time

import dns.resolver
import requests

from webmeeting.domain.signing import signed_headers

TIMEOUT_S = 5


class PbxUnreachable(Exception):
    """The PBX did not resolve, did not answer, or answered an error."""


def resolve(fqdn: str) -> str:
    server = os.environ.get("WEBMEETING_DNS_SERVER")
    resolver = dns.resolver.Resolver(configure=not server)
    if server:
        host, _, port = server.partition(":")
        resolver.nameservers = [host]
        resolver.port = int(port or 53)
    try:
        answer = resolver.resolve(fqdn, "A", lifetime=TIMEOUT_S)
    except dns.exception.DNSException as exc:
        raise PbxUnreachable(f"{fqdn} does not resolve: {exc.__class__.__name__}") from exc
    return str(answer[0])


def call(method: str, fqdn: str, path_with_query: str, pbx_id: str, api_secret: str, body: bytes = b"") -> requests.Response:
    scheme = os.environ.get("WEBMEETING_PBX_SCHEME", "https")
    port = os.environ.get("WEBMEETING_PBX_PORT", "")
    host = resolve(fqdn) if os.environ.get("WEBMEETING_DNS_SERVER") else fqdn
    url = f"{scheme}://{host}{':' + port if port else ''}{path_with_query}"
    headers = signed_headers(pbx_id, api_secret.encode(), method, path_with_query, body, int(time.time()))
    headers["Host"] = fqdn
    if body:
        headers["Content-Type"] = "application/json; charset=utf-8"
    try:
        resp = requests.request(method, url, data=body or None, headers=headers, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise PbxUnreachable(f"{fqdn} did not answer: {exc.__class__.__name__}") from exc
    if resp.status_code >= 400:
        raise PbxUnreachable(f"{fqdn} answered {resp.status_code}")
    return resp
