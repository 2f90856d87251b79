"""A room larger than one worker (``mcu_vm.span``): once its home worker holds MCU_SPAN_AFTER of
its people, newcomers' subscriptions go to the MCU's other worker, which gets each publisher's
packets piped once and forwards them itself. aiortc clients on loopback, the real MCU's two
workers (each its own process)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import requests

from infra.launcher import MCU_SPAN_AFTER, Platform
from infra.mcu_client import FlatVideoTrack, McuClient, VoiceTrack
from infra.pbx_client import PbxClient
from mcu_vm import net
from tests.helpers import ext

pytestmark = pytest.mark.integration
PEOPLE = MCU_SPAN_AFTER + 2  # two placed on the other worker


@pytest.fixture(autouse=True)
def loopback_ice() -> None:
    net.use_addresses(["127.0.0.1"])


async def _until(what: str, check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _workers(platform: Platform) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for mcu in platform.endpoints["mcus"]:
        out += requests.get(mcu["status"], timeout=5).json()["workers"]
    return out


def _frames(client: McuClient, publisher: str, kind: str) -> int:
    rec = client.received.get(publisher)
    return rec.kinds.get(kind, 0) if rec else 0


def test_a_room_larger_than_one_worker_is_forwarded_by_both_and_everybody_gets_everything(
    platform: Platform, pbx: PbxClient
) -> None:
    url = pbx.sync([ext("105")]).json()["extensions"][0]["quick_meeting_url"]
    key = url.rsplit("/", 1)[1]
    portal = platform.endpoints["portal"]
    assert MCU_SPAN_AFTER >= 2

    async def run() -> dict[str, Any]:
        people: list[McuClient] = []
        try:
            for i in range(PEOPLE):
                person = McuClient(portal, key, f"Person {i}")
                await person.join()
                await person.publish([VoiceTrack(), FlatVideoTrack(luma=60 + 20 * i, size=(160, 96))])
                people.append(person)
            ids = [p.joined["participant_id"] for p in people]
            everybody = lambda kind, n: all(  # noqa: E731
                _frames(p, other, kind) > n for p in people for other in ids if other != p.joined["participant_id"]
            )
            await _until("everybody's video at everybody", lambda: everybody("video", 10), 45)
            await _until("everybody's audio at everybody", lambda: everybody("audio", 10))
            spanning = [w for w in _workers(platform) if w["span"]["shadow_rooms"]]
            before = {
                (p.joined["participant_id"], o): _frames(p, o, "video")
                for p in people
                for o in ids
                if o != p.joined["participant_id"]
            }
            await asyncio.sleep(3.0)
            moving = {
                pair
                for pair, n in before.items()
                if _frames(next(p for p in people if p.joined["participant_id"] == pair[0]), pair[1], "video") > n + 20
            }
            # the last person (on the other worker) turns its camera off and on: the others' copies
            # stop, then come back from a keyframe (the held state crosses the pipe)
            last = people[-1]
            assert last.ws is not None
            await last.ws.send_json({"type": "mute", "video": False})
            await asyncio.sleep(1.5)
            stopped = {p.joined["participant_id"]: _frames(p, ids[-1], "video") for p in people[:-1]}
            await asyncio.sleep(1.5)
            still = all(_frames(p, ids[-1], "video") <= stopped[p.joined["participant_id"]] + 2 for p in people[:-1])
            await last.ws.send_json({"type": "mute", "video": True})
            await _until(
                "its video back everywhere",
                lambda: all(_frames(p, ids[-1], "video") > stopped[p.joined["participant_id"]] + 10 for p in people[:-1]),
            )
            # it leaves: nothing of it is left on either worker
            streams_before = sum(w["forwarded_streams"] for w in _workers(platform))
            await last.close()
            people.pop()
            await asyncio.sleep(1.0)
            after_leave = _workers(platform)
            return {
                "spanning": spanning,
                "moving": moving,
                "pairs": len(before),
                "still": still,
                "after": after_leave,
                "streams_before": streams_before,
            }
        finally:
            for person in people:
                await person.close()

    got = asyncio.run(run())
    helpers = got["spanning"]
    assert len(helpers) == 1, [w["span"] for w in _workers(platform)]
    helper = helpers[0]
    # the other worker forwards for the two placed on it: each gets the others' audio and video
    assert helper["forwarded_streams"] >= 2 * 2 * (PEOPLE - 1)
    assert helper["span"]["piped_in"] > 100 and helper["span"]["unknown_datagrams"] == 0
    assert helper["forwarding"]["sent_direct"] > 100 and helper["forwarding"]["send_errors"] == 0
    assert helper["decoders_created"] == 0
    assert len(got["moving"]) == got["pairs"]  # every copy at full rate, wherever it is forwarded
    assert got["still"]  # a camera turned off is held for the other worker's subscribers too
    homes = [w for w in got["after"] if w["span"]["piped_out"]]
    assert homes and all(w["span"]["pipe_dropped"] == 0 for w in homes)
    # the one who left had its subscriptions on the other worker: they are gone there
    # (what it received there, and everybody's copies of it: audio and video each)
    assert got["streams_before"] - sum(w["forwarded_streams"] for w in got["after"]) == 2 * 2 * (PEOPLE - 1)
