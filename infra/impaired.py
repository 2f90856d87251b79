"""A bad network between a client in its own network namespace and the platform, made in user
space (this kernel has no ``netem``).

``Impairment`` is the pure rule for one direction of a link: for each packet, whether it is lost
and when it leaves (random loss, delay and jitter without reordering, a rate with a bounded queue
as a real bottleneck has, and blackouts, in ``time.monotonic()`` seconds). ``UdpLink`` applies it to UDP: it listens on the
namespace's 127.0.0.1:<port> and carries every datagram to and from the same port on the
machine's 127.0.0.1, one outside socket per inside address (as a NAT would). Browsers inside reach
the MCUs through the TURN relay's UDP port this way, so every media packet crosses the link;
signalling crosses ``netns.TcpGate``, which stops during blackouts too.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from infra.netns import HOST, Namespace, call_in


@dataclass
class Impairment:
    """One direction of a link. ``rate_kbps`` 0: unlimited. ``queue_ms``: how much the
    bottleneck buffers before it drops (at ``rate_kbps``). ``blackouts``: (start, end) in
    ``time.monotonic()`` seconds during which everything is lost."""

    loss: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_kbps: float = 0.0
    queue_ms: float = 200.0
    blackouts: list[tuple[float, float]] = field(default_factory=list)
    seed: int = 1
    sent: int = 0
    sent_bytes: int = 0
    lost: int = 0  # random loss
    dropped: int = 0  # queue overflow
    blacked_out: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - a simulated link, seeded to repeat
        self._link_free_at = 0.0  # when the bottleneck has sent what it holds
        self._last_departure = 0.0

    def in_blackout(self, now: float) -> bool:
        return any(start <= now < end for start, end in self.blackouts)

    def departure(self, now: float, size: int) -> float | None:
        """When a packet of ``size`` bytes arriving at ``now`` leaves the link, or None (lost)."""
        if self.in_blackout(now):
            self.blacked_out += 1
            return None
        if self.loss and self._random.random() < self.loss:
            self.lost += 1
            return None
        leave = now
        if self.rate_kbps:
            start = max(now, self._link_free_at)
            if start - now > self.queue_ms / 1000:
                self.dropped += 1
                return None
            self._link_free_at = start + size * 8 / (self.rate_kbps * 1000)
            leave = self._link_free_at
        leave += self.delay_ms / 1000
        if self.jitter_ms:
            leave += self._random.uniform(0, self.jitter_ms / 1000)
        # a link delays, it does not reorder: strictly after the one before (timers due at the same
        # instant may fire in any order)
        leave = max(leave, self._last_departure + 1e-6)
        self._last_departure = leave
        self.sent += 1
        self.sent_bytes += size
        return leave


@dataclass
class LinkSpec:
    """Both directions: ``up`` from the client, ``down`` to it."""

    up: Impairment = field(default_factory=Impairment)
    down: Impairment = field(default_factory=Impairment)


class _Outside(asyncio.DatagramProtocol):
    """The outside socket for one inside address: what comes back goes down the link to it."""

    def __init__(self, link: UdpLink, inside: tuple[str, int]) -> None:
        self.link = link
        self.inside = inside
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.link.carry(self.link.spec.down, data, lambda: self.link.inside_send(data, self.inside))


class _Inside(asyncio.DatagramProtocol):
    def __init__(self, link: UdpLink) -> None:
        self.link = link

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.link.from_inside(data, addr)


class UdpLink:
    """UDP between ``namespace``'s 127.0.0.1:``port`` and the machine's 127.0.0.1:``port``,
    impaired as ``spec`` says (which may change while it runs: a blackout added, a rate set)."""

    def __init__(self, namespace: Namespace, port: int, spec: LinkSpec) -> None:
        self.port = port
        self.spec = spec
        with namespace.entered():
            inside = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            inside.bind((HOST, port))
            inside.setblocking(False)
        self._outside: dict[tuple[str, int], _Outside] = {}
        self._source = HOST  # the outside address the platform sees this link's packets from
        self.rebinds = 0
        self._inside: asyncio.DatagramTransport | None = None
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            transport, _ = self._loop.run_until_complete(self._loop.create_datagram_endpoint(lambda: _Inside(self), sock=inside))
            self._inside = transport
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"udp-link-{port}", daemon=True)
        self._thread.start()
        ready.wait(10)

    def carry(self, direction: Impairment, data: bytes, deliver: Callable[[], None]) -> None:
        now = time.monotonic()
        leave = direction.departure(now, len(data) + 28)  # IP + UDP headers count on a link
        if leave is None:
            return
        if leave <= now:
            deliver()
        else:
            # at the departure itself, on the loop's own (monotonic) clock: a delay measured from a
            # slightly later "now" would let a packet due 1 µs after another leave before it
            self._loop.call_at(leave, deliver)

    def from_inside(self, data: bytes, addr: tuple[str, int]) -> None:
        outside = self._outside.get(addr)
        if outside is None:
            outside = _Outside(self, addr)
            self._outside[addr] = outside
            self._loop.create_task(self._open(outside, data))
            return
        self.carry(self.spec.up, data, lambda: self._outside_send(outside, data))

    def rebind(self) -> None:
        """A network change: from now on the platform sees this link's packets from a new
        address (another loopback address, new ports), and what it sends to the old ones is lost:
        like a phone moving from Wi-Fi to mobile data, or a NAT that forgot its mappings."""

        def change() -> None:
            self.rebinds += 1
            self._source = f"127.0.0.{1 + self.rebinds}"
            for outside in self._outside.values():
                if outside.transport is not None:
                    outside.transport.close()
            self._outside.clear()

        call_in(self._loop, change)

    async def _open(self, outside: _Outside, first: bytes) -> None:
        await self._loop.create_datagram_endpoint(lambda: outside, local_addr=(self._source, 0), remote_addr=(HOST, self.port))
        self.carry(self.spec.up, first, lambda: self._outside_send(outside, first))

    @staticmethod
    def _outside_send(outside: _Outside, data: bytes) -> None:
        if outside.transport is not None:
            outside.transport.sendto(data)

    def inside_send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._inside is not None:
            self._inside.sendto(data, addr)

    def close(self) -> None:
        def stop() -> None:
            for outside in self._outside.values():
                if outside.transport is not None:
                    outside.transport.close()
            if self._inside is not None:
                self._inside.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)
