"""The MCU's own edges, on loopback: what it tells the portal when a batch is refused, and which
address it records for a browser behind its TLS proxy."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from mcu_vm.__main__ import client_ip
from mcu_vm.portal import PortalClient
from mcu_vm.room import room_video_codecs


async def _portal(status: int, calls: list[int]) -> tuple[web.AppRunner, str]:
    async def events(request: web.Request) -> web.Response:
        calls.append(len((await request.json())["events"]))
        return web.json_response({"error": {"code": "invalid_request", "message": "no"}}, status=status)

    app = web.Application()
    app.router.add_post("/api/mcu/v1/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _deliveries(status: int, wait_s: float) -> tuple[list[int], int]:
    async def run() -> tuple[list[int], int]:
        calls: list[int] = []
        runner, url = await _portal(status, calls)
        client = PortalClient(url, "mcu-test", "secret")
        try:
            client.event("joined", "k" * 22, "p" * 12)
            await asyncio.sleep(wait_s)
            return calls, len(client._events)
        finally:
            await client.close()
            await runner.cleanup()

    return asyncio.run(run())


def test_a_batch_the_portal_refuses_for_good_is_dropped_not_retried_forever() -> None:
    calls, left = _deliveries(400, 2.0)
    assert calls == [1] and left == 0


def test_a_batch_the_portal_cannot_take_now_is_kept_and_retried() -> None:
    calls, left = _deliveries(503, 2.0)  # retries after 0.5 s, then 1 s
    assert len(calls) >= 2 and left == 1


def test_behind_its_tls_proxy_the_mcu_records_the_browsers_address() -> None:
    proxied = make_mocked_request("GET", "/ws", headers={"X-Forwarded-For": "198.51.100.4, 203.0.113.9"})
    assert client_ip(proxied, 1) == "203.0.113.9"  # what Caddy appended; the rest the client wrote
    assert client_ip(proxied, 0) != "203.0.113.9"  # locally (no proxy) the header is not trusted at all
    assert client_ip(make_mocked_request("GET", "/ws"), 1) == client_ip(make_mocked_request("GET", "/ws"), 0)


def test_a_publish_is_narrowed_to_the_codec_every_browser_decodes() -> None:
    h264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
    h264_rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=103, parameters={"apt": 102})
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    vp8_rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96})
    # Safari's order, H.264 first: the room gets VP8 (and its retransmission stream) only
    assert room_video_codecs([h264, h264_rtx, vp8, vp8_rtx]) == [vp8, vp8_rtx]
    # no VP8 offered: forwarded as it is (a subscriber that cannot decode it loses that stream only)
    assert room_video_codecs([h264, h264_rtx]) == [h264, h264_rtx]
