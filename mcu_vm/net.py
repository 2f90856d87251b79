"""ICE networking of the MCU: which addresses to offer, which UDP ports to bind.

aioice gathers host candidates on every interface except loopback and binds random ports.
The MCU offers exactly the addresses it is configured with (locally 127.0.0.1; on a VM its
interface address) and binds within a configured UDP port range that the firewall opens.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
from typing import Any

import aioice.ice


def use_addresses(addresses: list[str]) -> None:
    """Gather host candidates on exactly these addresses."""
    fixed = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(fixed)


def bind_in_port_range(loop: asyncio.AbstractEventLoop, low: int, high: int) -> None:
    """Make UDP endpoints on an ephemeral port (port 0) bind within [low, high] instead."""
    real = loop.create_datagram_endpoint

    async def create_datagram_endpoint(protocol_factory: Any, local_addr: Any = None, **kwargs: Any) -> Any:
        if not local_addr or local_addr[1] != 0:
            return await real(protocol_factory, local_addr=local_addr, **kwargs)
        ports = list(range(low, high + 1))
        random.shuffle(ports)
        for port in ports:
            try:
                return await real(protocol_factory, local_addr=(local_addr[0], port), **kwargs)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, f"no free UDP port in {low}-{high}")

    loop.create_datagram_endpoint = create_datagram_endpoint  # type: ignore[method-assign,assignment]


def port_of(transport: Any) -> int:
    sock: socket.socket = transport.get_extra_info("socket")
    return int(sock.getsockname()[1])
