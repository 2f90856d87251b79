"""A browser's own network behind a user-space link: its namespace, TCP to the platform's web
ports only (signalling, the page), and UDP to the TURN relay across ``UdpLink`` with ``spec``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

from infra.impaired import LinkSpec, UdpLink
from infra.launcher import Platform
from infra.netns import Namespace, TcpGate


@contextlib.contextmanager
def behind_link(platform: Platform, spec: LinkSpec) -> Iterator[tuple[Namespace, TcpGate, UdpLink]]:
    namespace = Namespace()
    web = [urlsplit(platform.endpoints["portal"]).port] + [urlsplit(m["url"]).port for m in platform.endpoints["mcus"]]
    gate = TcpGate(namespace, [int(p) for p in web if p])
    link = UdpLink(namespace, int(platform.endpoints["turn"]["port"]), spec)
    try:
        yield namespace, gate, link
    finally:
        link.close()
        gate.close()
        namespace.close()
