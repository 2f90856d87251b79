"""Network namespaces the tests and benchmarks create for a browser or client, so that its
network is what we say, not the machine's loopback.

``Namespace`` is an ``ip netns`` namespace with only its own ``lo``: a process started with
``namespace.prefix`` sees nothing of the platform. ``TcpGate`` then opens chosen TCP ports
through: a listener on the namespace's 127.0.0.1:<port> for each, piped to the same port on the
machine's 127.0.0.1. Nothing else crosses, so UDP from inside goes nowhere: a network that lets
only TCP out (as one that allows nothing but 443), where the browser must reach the MCU through
TURN over TCP or TLS.

A socket belongs to the namespace of the thread that created it: ``Namespace.entered()`` moves
the calling thread in (``setns``) for as long as the block runs, so listeners (or a test's
client socket, such as Marionette's) can be made inside and used from anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator

CLONE_NEWNET = 0x40000000
IP = shutil.which("ip") or "/usr/sbin/ip"  # Debian's iproute2
HOST = "127.0.0.1"
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


# a device's own network interface, inside the namespace only: its default route leads to a
# gateway that is not there (a documentation address, RFC 5737), so nothing gets anywhere by it
UPLINK_ADDRESS = "192.0.2.10/24"
DEAD_GATEWAY = "192.0.2.1"


class Namespace:
    """A private network namespace with ``lo`` up, and an interface with a default route as any
    device has (browsers gather ICE candidates only where there is one; Firefox gathers none
    without it) whose far end is a veth peer in the same namespace: nothing leaves by it.
    ``close()`` removes it all."""

    def __init__(self) -> None:
        self.name = f"wm-{secrets.token_hex(4)}"
        subprocess.run([IP, "netns", "add", self.name], check=True)
        ns = [IP, "-n", self.name]
        for argv in (
            ["link", "set", "lo", "up"],
            ["link", "add", "wan0", "type", "veth", "peer", "name", "wan1"],
            ["addr", "add", UPLINK_ADDRESS, "dev", "wan0"],
            ["link", "set", "wan0", "up"],
            ["link", "set", "wan1", "up"],
            ["route", "add", "default", "via", DEAD_GATEWAY, "dev", "wan0"],
        ):
            subprocess.run([*ns, *argv], check=True)
        self.prefix = [IP, "netns", "exec", self.name]

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread inside the namespace for the block (other threads stay where they are)."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def close(self) -> None:
        subprocess.run([IP, "netns", "del", self.name], check=False)


def call_in(loop: asyncio.AbstractEventLoop, fn: Callable[[], None], timeout: float = 5) -> None:
    """Run ``fn`` on ``loop`` (another thread's) and wait for it."""
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        finally:
            done.set()

    loop.call_soon_threadsafe(run)
    done.wait(timeout)


class TcpGate:
    """TCP to ``ports`` on the machine's 127.0.0.1 from inside ``namespace`` (same port numbers);
    nothing else gets through. Runs its own event loop in a thread until ``close()``."""

    def __init__(self, namespace: Namespace, ports: Iterable[int], blackouts: list[tuple[float, float]] | None = None) -> None:
        """``blackouts``: (start, end) in ``time.monotonic()`` seconds when nothing crosses
        (what was sent then arrives after, as TCP's retransmissions would bring it)."""
        self.ports = sorted(set(ports))
        self.blackouts = blackouts if blackouts is not None else []
        listeners = []
        with namespace.entered():
            for port in self.ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((HOST, port))
                sock.listen(64)
                sock.setblocking(False)
                listeners.append(sock)
        self.connections = 0
        self._live: set[asyncio.StreamWriter] = set()  # both ends of every connection through the gate
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            for sock in listeners:
                handler = functools.partial(self._pipe, port=int(sock.getsockname()[1]))
                self._servers.append(self._loop.run_until_complete(asyncio.start_server(handler, sock=sock)))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="tcp-gate", daemon=True)
        self._thread.start()
        ready.wait(10)

    async def _pipe(self, inner_r: asyncio.StreamReader, inner_w: asyncio.StreamWriter, port: int) -> None:
        self.connections += 1
        try:
            outer_r, outer_w = await asyncio.open_connection(HOST, port)
        except OSError:
            inner_w.close()
            return

        self._live |= {inner_w, outer_w}

        async def copy(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    await self._through_blackouts()
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    w.close()

        try:
            await asyncio.gather(copy(inner_r, outer_w), copy(outer_r, inner_w))
        finally:
            self._live -= {inner_w, outer_w}

    def reset(self) -> None:
        """A network change: every connection through the gate is cut (both ends get a reset, as
        a browser closes its sockets when its address changes); new ones go through."""

        def cut() -> None:
            for w in list(self._live):
                w.transport.abort()
            self._live.clear()

        call_in(self._loop, cut)

    async def _through_blackouts(self) -> None:
        while True:
            now = time.monotonic()
            ends = [end for start, end in self.blackouts if start <= now < end]
            if not ends:
                return
            await asyncio.sleep(max(ends) - now)

    def close(self) -> None:
        def stop() -> None:
            for server in self._servers:
                server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)
