"""The reference the MCU is measured against: the same rooms and signalling, but stock aiortc
fan-out, ``MediaRelay`` (decode every incoming track once, re-encode it for every subscriber).

    MCU_* settings as for mcu_vm; python bench/relay_worker.py --port PORT
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from aiortc import RTCPeerConnection  # noqa: E402
from aiortc.codecs import vpx  # noqa: E402
from aiortc.contrib.media import MediaRelay  # noqa: E402

from mcu_vm import net  # noqa: E402
from mcu_vm.portal import PortalClient  # noqa: E402
from mcu_vm.room import RoomRegistry  # noqa: E402
from mcu_vm.settings import McuSettings  # noqa: E402
from mcu_vm.signalling import Signalling  # noqa: E402


class RelayPublisher:
    """Publisher stand-in: subscribers get ``MediaRelay`` proxies of the decoded track."""

    def __init__(self, track: Any) -> None:
        self.kind = track.kind
        self.track = track
        self.relay = MediaRelay()

    def subscribe(self) -> Any:
        return self.relay.subscribe(self.track, buffered=False)

    def unsubscribe(self, proxy: Any) -> None:
        proxy.stop()

    def hold(self, held: bool) -> None:
        """The benchmark's publishers are never muted."""

    async def stop(self) -> None:
        self.track.stop()


class RelayRegistry(RoomRegistry):
    """The MCU's rooms and signalling, with MediaRelay fan-out in place of passthrough."""

    def make_publisher(self, track: Any, receiver: Any, codec: Any) -> Any:
        return RelayPublisher(track)

    def attach(self, pc: RTCPeerConnection, pub: Any) -> Any:
        proxy = pub.subscribe()
        pc.addTransceiver(proxy, direction="sendonly")  # aiortc encodes what the proxy yields
        return proxy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    vpx.DEFAULT_BITRATE = 1_200_000  # re-encode at the publisher's rate, for a fair comparison
    s = McuSettings.from_env()
    net.use_addresses(list(s.ice_addresses))
    registry = RelayRegistry(s.mcu_id, s.token_public_key, list(s.ice_servers), PortalClient(s.portal_url, s.mcu_id, s.secret))
    app = web.Application()
    app.router.add_get("/ws", Signalling(registry).handle)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
