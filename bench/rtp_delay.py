"""The delay a forwarding server adds per packet, RTP in → RTP out, as the kernel saw both.

A packet socket on every interface of the benchmark's private network namespace (loopback, and
the veth pair Janus sits on) copies every UDP datagram with the kernel's timestamp, once: as it
is received (a copy leaving an interface, loopback's included, is skipped, so a packet crossing
the veth pair is not counted twice). SRTP leaves the RTP header in the clear,
so each datagram's SSRC, sequence number, timestamp and size are readable; streams are told apart
by (source, destination, SSRC). A server forwards a video frame as the same number of packets with
the same sizes (up to a constant: its own header extensions), under a timestamp shifted by a
constant per subscriber: a frame of the publisher's stream and its copy in a subscriber's stream
are matched by that shape, and each forwarded packet by its place in the frame. The delay is the
copy's timestamp minus the original's. Pure matching (``delays``) is unit-tested; ``capture``
needs root (the benchmark runs as root in its own namespace).
"""

from __future__ import annotations

import collections
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35  # Linux: a struct timespec per datagram (SCM_TIMESTAMPNS)
FRAME_MIN_PACKETS = 2  # a frame that fits in one packet says little about its shape
MATCH_WINDOW_S = 0.5  # a copy comes this soon after its original, or it is not one
RCVBUF = 64 << 20


@dataclass(frozen=True)
class Packet:
    at: float  # the kernel's timestamp, seconds
    flow: tuple[str, int, str, int]  # source address, port, destination address, port
    ssrc: int
    seq: int
    ts: int
    marker: bool
    size: int  # the UDP payload's bytes

    @property
    def stream(self) -> tuple[tuple[str, int, str, int], int]:
        return self.flow, self.ssrc


def parse(frame: bytes, at: float) -> Packet | None:
    """An RTP packet (not RTCP, not STUN or DTLS) carried in an IPv4/UDP frame on loopback."""
    if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != socket.IPPROTO_UDP or len(ip) < ihl + 8 + 12:
        return None
    src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    sport, dport = struct.unpack_from("!HH", ip, ihl)
    rtp = ip[ihl + 8 :]
    if rtp[0] >> 6 != 2 or 72 <= (rtp[1] & 0x7F) <= 79:  # version 2; payload types 200-207 are RTCP
        return None
    seq, ts, ssrc = struct.unpack_from("!HII", rtp, 2)
    return Packet(at, (src, sport, dst, dport), ssrc, seq, ts, bool(rtp[1] & 0x80), len(rtp))


def capture(seconds: float, interface: str | None = None) -> list[Packet]:
    """Every RTP packet received on ``interface`` (None: every interface) for ``seconds``, with
    kernel timestamps."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if interface:
            sock.bind((interface, 0))
        sock.settimeout(0.2)
        out: list[Packet] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data, ancillary, _flags, address = sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except TimeoutError:
                continue
            if address[2] == socket.PACKET_OUTGOING:
                continue  # the same packet is seen again where it is received
            at = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    at = sec + nsec / 1e9
            packet = parse(data, at)
            if packet is not None:
                out.append(packet)
        return out
    finally:
        sock.close()


Frame = tuple[int, list[Packet]]  # (RTP timestamp, its packets in order of arrival)


def frames(packets: Iterable[Packet]) -> dict[tuple[tuple[str, int, str, int], int], list[Frame]]:
    """Each stream's frames (video: several packets share a timestamp), in order."""
    by_stream: dict[tuple[tuple[str, int, str, int], int], dict[int, list[Packet]]] = collections.defaultdict(dict)
    for p in sorted(packets, key=lambda p: p.at):
        by_stream[p.stream].setdefault(p.ts, []).append(p)
    return {s: list(f.items()) for s, f in by_stream.items()}


def _shape(frame: Sequence[Packet]) -> tuple[int, ...]:
    return tuple(p.size - frame[0].size for p in frame)  # sizes relative to its first packet


def offsets(original: list[Frame], copy: list[Frame]) -> tuple[int, int] | None:
    """(timestamp shift, size difference) that make ``copy`` a forwarded ``original``, by the
    frames whose shapes and times agree most often; None when they do not."""
    votes: collections.Counter[tuple[int, int]] = collections.Counter()
    by_shape: dict[tuple[int, int], list[Frame]] = collections.defaultdict(list)
    for f in original:
        if len(f[1]) >= FRAME_MIN_PACKETS:
            by_shape[(len(f[1]), _shape(f[1])[-1])].append(f)
    for ts, pkts in copy:
        if len(pkts) < FRAME_MIN_PACKETS:
            continue
        for ots, opkts in by_shape.get((len(pkts), _shape(pkts)[-1]), []):
            if _shape(opkts) == _shape(pkts) and 0 <= pkts[0].at - opkts[0].at < MATCH_WINDOW_S:
                votes[((ts - ots) & 0xFFFFFFFF, pkts[0].size - opkts[0].size)] += 1
    if not votes:
        return None
    (best, count), *rest = votes.most_common(2) + [((0, 0), 0)]
    return best if count >= 3 and count > 2 * rest[0][1] else None


def delays(original: list[Frame], copy: list[Frame], last_only: bool = False) -> list[float]:
    """Seconds from each original packet to its forwarded copy (frames the copy has); with
    ``last_only``, from each frame's last packet to its copy's (when the frame is whole at the
    subscriber: what its decoder waits for)."""
    found = offsets(original, copy)
    if found is None:
        return []
    shift, _size = found
    index = {ts: pkts for ts, pkts in original}
    out = []
    for ts, pkts in copy:
        source = index.get((ts - shift) & 0xFFFFFFFF)
        if source is None or len(source) != len(pkts):
            continue
        pairs = [(source[-1], pkts[-1])] if last_only else list(zip(source, pkts, strict=True))
        out += [c.at - o.at for o, c in pairs if 0 <= c.at - o.at < MATCH_WINDOW_S]
    return out


def forwarding_delays(packets: list[Packet]) -> tuple[list[float], list[float], int]:
    """Every forwarded packet's delay and every forwarded frame's (its last packet's), from the
    stream the others are copies of (the publisher's); and how many copies (subscriber streams)
    were matched."""
    streams = {s: f for s, f in frames(packets).items() if sum(len(p) for _, p in f) > 1.5 * max(len(f), 1)}  # video
    best: tuple[int, list[float], list[float]] = (0, [], [])
    for source, original in streams.items():
        copies = [copy for s, copy in streams.items() if s != source and delays(original, copy)]
        if len(copies) > best[0]:
            per_packet = [x for copy in copies for x in delays(original, copy)]
            per_frame = [x for copy in copies for x in delays(original, copy, last_only=True)]
            best = (len(copies), per_packet, per_frame)
    return best[1], best[2], best[0]
