"""Calls from the platform to a PBX (``https://{pbx_fqdn}/webmeeting/v1/...``), signed like the
PBX's own calls, through the egress guard (``webmeeting.adapters.egress``): resolved once,
public addresses only (locally: the simulator's exact host:port), no redirects, bounded answers.
Locally, FQDNs resolve through the platform's DNS server (``WEBMEETING_DNS_SERVER``) and PBXs
answer plain HTTP on ``WEBMEETING_PBX_PORT``."""

from __future__ import annotations

import time

from webmeeting.adapters import egress
from webmeeting.domain.signing import signed_headers


class PbxUnreachable(Exception):
    """The PBX did not resolve, resolved to an address the platform does not call, did not
    answer, answered too much or too slowly, redirected, or answered an error."""


def resolve(fqdn: str) -> str:
    try:
        return egress.resolve(fqdn)[0]
    except egress.EgressRefused as exc:
        raise PbxUnreachable(str(exc)) from exc


def call(method: str, fqdn: str, path_with_query: str, pbx_id: str, api_secret: str, body: bytes = b"") -> egress.Reply:
    headers = signed_headers(pbx_id, api_secret.encode(), method, path_with_query, body, int(time.time()))
    if body:
        headers["Content-Type"] = "application/json; charset=utf-8"
    try:
        return egress.request(method, fqdn, path_with_query, headers, body)
    except egress.EgressRefused as exc:
        raise PbxUnreachable(str(exc)) from exc
