"""A large meeting: each subscriber gets everybody's audio and the videos of the last N who
spoke (then who came first); the others' videos are paused for it, and a new speaker's video
comes back at once. aiortc clients (publishers that do not subscribe: one test process)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from infra.launcher import Platform
from infra.mcu_client import FlatVideoTrack, McuClient, VoiceTrack
from infra.pbx_client import PbxClient
from mcu_vm import net
from mcu_vm.adaptation import LAST_N
from tests.helpers import ext

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def loopback_ice() -> None:
    net.use_addresses(["127.0.0.1"])


def _paused(observer: McuClient) -> dict[str, tuple[bool, str]]:
    """The latest video_paused state per publisher, as the observer was told."""
    out: dict[str, tuple[bool, str]] = {}
    for m in observer.messages:
        if m["type"] == "video_paused" and m["source"] == "camera":
            out[m["publisher_id"]] = (m["paused"], m.get("reason", "link"))
    return out


async def _until(what: str, check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_subscriber_gets_everybodys_audio_and_the_last_n_speakers_video(platform: Platform, pbx: PbxClient) -> None:
    url = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"]
    key = url.rsplit("/", 1)[1]
    portal = platform.endpoints["portal"]

    async def run() -> dict[str, Any]:
        observer = McuClient(portal, key, "Observer")
        await observer.join()
        people: list[McuClient] = []
        voices: list[VoiceTrack] = []
        try:
            for i in range(LAST_N + 1):
                person = McuClient(portal, key, f"Person {i}", subscribe=False)
                await person.join()
                voice = VoiceTrack()
                await person.publish([voice, FlatVideoTrack(size=(160, 96))])
                people.append(person)
                voices.append(voice)
            ids = [p.joined["participant_id"] for p in people]
            # nobody has spoken: the last to come is the one past the last N
            await _until("the tenth camera paused", lambda: _paused(observer).get(ids[-1]) == (True, "speakers"))
            first = dict(_paused(observer))
            # everybody's audio arrives, the paused person's included
            await _until(
                "everybody's audio",
                lambda: all(observer.received.get(i) and observer.received[i].kinds.get("audio", 0) > 10 for i in ids),
            )
            # the last one speaks: their video is back, and the latest-come silent one's goes
            voices[-1].speaking = True
            await _until("the speaker's video back", lambda: _paused(observer).get(ids[-1]) == (False, "link"))
            await _until("the next one paused", lambda: _paused(observer).get(ids[-2]) == (True, "speakers"))
            video_before = {i: observer.received[i].kinds.get("video", 0) for i in ids}
            await asyncio.sleep(2.0)
            moving = {i for i in ids if observer.received[i].kinds.get("video", 0) > video_before[i] + 5}
            return {"ids": ids, "first": first, "after": _paused(observer), "moving": moving}
        finally:
            for person in people:
                await person.close()
            await observer.close()

    got = asyncio.run(run())
    ids = got["ids"]
    assert {i for i, (paused, _) in got["first"].items() if paused} == {ids[-1]}  # exactly one paused at first
    assert {i for i, (paused, _) in got["after"].items() if paused} == {ids[-2]}
    assert got["moving"] == set(ids) - {ids[-2]}, got  # the last N's videos keep coming, the paused one's not
