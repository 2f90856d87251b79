"""Types of the native per-packet path (mcu_vm/_fastfwd.c)."""

from collections.abc import Callable
from typing import Any

HISTORY: int
MAX_PACKET: int

class Sink:
    layer: int
    target_layer: int
    waiting_for_keyframe: bool
    wants_keyframe: bool
    live: bool
    @property
    def bound(self) -> bool: ...
    @property
    def video(self) -> bool: ...
    @property
    def ssrc(self) -> int: ...
    @property
    def clock_rate(self) -> int: ...
    @property
    def timestamp_offset(self) -> int: ...
    @property
    def transport(self) -> Any: ...
    @property
    def newest_timestamp(self) -> int | None: ...
    frames: int
    forwarded: int
    dropped: int
    paused_frames: int
    layer_frames_dropped: int
    packets: int
    octets: int
    sent_direct: int
    sent_slow: int
    send_errors: int
    too_big: int
    batches: int
    held: int
    def __init__(self, video: bool) -> None: ...
    def bind(
        self,
        *,
        ssrc: int,
        rtx_ssrc: int,
        payload_type: int,
        rtx_payload_type: int,
        clock_rate: int,
        mid: bytes,
        mid_id: int,
        abs_send_time_id: int,
        audio_level_id: int,
        sequence_start: int,
        timestamp_offset: int,
        rtx_sequence: int,
        sender_dict: dict[str, Any] | None,
        transport: Any,
        connected: Any,
        nominated: dict[int, Any] | None,
        resolve: Callable[[Sink], None],
        slow: Callable[[Sink, bytes], None],
    ) -> None: ...
    def set_route(self, pair: Any, transport: Any, fd: int, host: str, port: int, srtp: Any, ctx: int, protect: int) -> bool: ...
    def admit(self, keyframe: bool, layer: int, /) -> int: ...
    def forward_sequence(self, seq: int, /) -> int | None: ...
    def drop(self, seq: int, /) -> None: ...
    def build(self, seq: int, timestamp: int, marker: int, payload: bytes, level: int, ntp: int, /) -> bytes: ...
    def send(self, seq: int, timestamp: int, marker: int, payload: bytes, level: int, /) -> bool: ...
    def sent(self, seq: int, /) -> tuple[bytes, int, int] | None: ...
    def resend(self, seq: int, /) -> bool: ...

def forward(
    sinks: tuple[Sink, ...],
    seq: int,
    timestamp: int,
    marker: int,
    payload: bytes,
    keyframe: bool,
    layer: int,
    picture_id_at: int,
    picture_id_bits: int,
    level: int,
    held: bool,
    /,
) -> tuple[list[Sink] | None, bool]: ...
def flush(sinks: tuple[Sink, ...], /) -> None: ...
def ntp_now() -> int: ...
