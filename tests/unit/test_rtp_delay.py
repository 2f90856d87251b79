"""The benchmark's RTP in → out matching (bench/rtp_delay.py): a forwarded copy of a stream is
found by its frames' shapes under any timestamp shift and header growth, dropped frames and other
streams do not confuse it, and a stream that is not a copy yields nothing."""

from __future__ import annotations

import random
import socket
import struct

from bench.rtp_delay import Packet, delays, forwarding_delays, frames, parse

PUB = ("127.0.0.1", 5000, "127.0.0.1", 6000)


def stream(
    flow: tuple[str, int, str, int], ssrc: int, sizes: list[list[int]], start: float, ts0: int, grow: int = 0, lag: float = 0.0
) -> list[Packet]:
    out, seq = [], 100
    for i, frame in enumerate(sizes):
        for j, size in enumerate(frame):
            at = start + i / 30 + j * 0.0005 + lag
            out.append(Packet(at, flow, ssrc, seq & 0xFFFF, (ts0 + 3000 * i) & 0xFFFFFFFF, j == len(frame) - 1, size + grow))
            seq += 1
    return out


def video(n: int, seed: int = 1) -> list[list[int]]:
    rng = random.Random(seed)
    return [[1200] * rng.randint(1, 4) + [rng.randint(100, 1199)] for _ in range(n)]


def test_a_copy_is_matched_whatever_its_shift_and_its_headers() -> None:
    sizes = video(90)
    original = stream(PUB, 1, sizes, 10.0, 5)
    copy = stream(("127.0.0.1", 6001, "127.0.0.1", 7000), 99, sizes, 10.0, 4_000_000_000, grow=12, lag=0.0004)
    found = delays(frames(original)[(PUB, 1)], frames(copy)[copy[0].stream])
    assert len(found) == len(original) and all(abs(d - 0.0004) < 1e-9 for d in found)


def test_the_publisher_is_found_among_its_copies_and_dropped_frames_are_skipped() -> None:
    sizes = video(120)
    packets = stream(PUB, 1, sizes, 0.0, 0)
    for n in range(3):
        copy = stream(("127.0.0.1", 6001, "127.0.0.1", 7000 + n), 50 + n, sizes, 0.0, 1000 * n, grow=8, lag=0.001 * (n + 1))
        packets += [p for p in copy if (p.ts // 3000) % 7 != 3]  # every 7th frame dropped for this one
    packets += stream(("127.0.0.1", 5002, "127.0.0.1", 6000), 7, [[160]] * 120, 0.0, 0)  # audio: one packet a frame
    found, per_frame, copies = forwarding_delays(packets)
    assert copies == 3 and found and min(found) > 0.0009 and max(found) < 0.0031
    kept = sum(1 for i in range(120) if i % 7 != 3)
    assert len(per_frame) == 3 * kept and sorted(set(round(d, 6) for d in per_frame)) == [0.001, 0.002, 0.003]


def test_an_unrelated_stream_is_no_copy() -> None:
    a = stream(PUB, 1, video(90, seed=1), 0.0, 0)
    b = stream(("127.0.0.1", 6001, "127.0.0.1", 7000), 2, video(90, seed=2), 0.0, 0, lag=0.001)
    assert delays(frames(a)[(PUB, 1)], frames(b)[b[0].stream]) == []


def test_only_rtp_in_udp_over_ipv4_is_read() -> None:
    rtp = struct.pack("!BBHII", 0x80, 0x80 | 96, 7, 3000, 0xABCD) + b"x" * 20
    udp = struct.pack("!HHHH", 4000, 5000, 8 + len(rtp), 0) + rtp
    ip = bytes([0x45, 0, 0, 20 + len(udp), 0, 0, 0, 0, 64, socket.IPPROTO_UDP, 0, 0]) + socket.inet_aton("127.0.0.1") * 2
    frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
    p = parse(frame, 1.5)
    assert p is not None and (p.seq, p.ts, p.ssrc, p.marker, p.size, p.flow[1]) == (7, 3000, 0xABCD, True, len(rtp), 4000)
    rtcp = bytearray(frame)
    rtcp[14 + 20 + 8 + 1] = 200  # a sender report
    assert parse(bytes(rtcp), 1.5) is None
    assert parse(frame[:30], 1.5) is None and parse(b"\x00" * 12 + b"\x86\xdd" + ip + udp, 1.5) is None
