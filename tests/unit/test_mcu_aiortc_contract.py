"""The private aiortc/aioice names the MCU's passthrough relies on. If an upgrade changes any
of them, this fails loudly here instead of the MCU silently decoding (or breaking) in production."""

import inspect

import aioice.ice
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, rtcrtpreceiver

from mcu_vm import passthrough


def test_the_receiver_starts_its_decoder_thread_from_the_module_global() -> None:
    params = list(inspect.signature(rtcrtpreceiver.decoder_worker).parameters)
    assert params == ["loop", "input_q", "output_q", "decode_error"]
    assert list(inspect.signature(passthrough.passthrough_worker).parameters) == params
    assert "target=decoder_worker" in inspect.getsource(RTCRtpReceiver.receive)


def test_senders_pack_packets_without_encoding() -> None:
    source = inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert "isinstance(data, Frame)" in source and ".pack(data)" in source


def test_keyframe_hooks_exist() -> None:
    assert callable(RTCRtpSender._send_keyframe)
    assert "self._send_keyframe()" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert inspect.iscoroutinefunction(RTCRtpReceiver._send_rtcp_pli)
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters) == ["self", "media_ssrc"]


async def _transceiver_codecs() -> list:  # type: ignore[type-arg]
    pc = RTCPeerConnection()
    try:
        t = pc.addTransceiver("video")
        return t._codecs
    finally:
        await pc.close()


def test_transceivers_keep_negotiated_codecs() -> None:
    import asyncio

    assert isinstance(asyncio.run(_transceiver_codecs()), list)


def test_aioice_host_address_hook_exists() -> None:
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"]
    assert "get_host_addresses(" in inspect.getsource(aioice.ice.Connection.gather_candidates)


def test_receiver_sees_sender_reports_through_the_hooked_method() -> None:
    """Recordings keep the publisher's RTCP sender reports by wrapping this method."""
    from aiortc.rtcrtpreceiver import RTCRtpReceiver
    from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

    source = inspect.getsource(RTCRtpReceiver._handle_rtcp_packet)
    assert "RtcpSrPacket" in source and "sender_info.ntp_timestamp" in source
    assert {"ntp_timestamp", "rtp_timestamp"} <= set(RtcpSenderInfo.__dataclass_fields__)
    assert "sender_info" in RtcpSrPacket.__dataclass_fields__


def test_receiver_timestamps_are_mapped_from_the_first_one() -> None:
    """Frames carry RTP timestamps minus the stream's first; recordings move SRs the same way."""
    from aiortc.rtcrtpreceiver import RTCRtpReceiver, TimestampMapper

    assert "self.__timestamp_mapper = TimestampMapper()" in inspect.getsource(RTCRtpReceiver.__init__)
    assert "self.__timestamp_mapper.map(" in inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    mapper = TimestampMapper()
    assert mapper.map(1000) == 0 and mapper._origin == 1000 and mapper.map(4000) == 3000


def test_receiver_knows_its_rtx_ssrcs() -> None:
    """Keyframe requests and sender reports skip RTX sources using this private map."""
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    from mcu_vm.passthrough import media_ssrc

    assert "self.__rtx_ssrc: dict[int, int] = {}" in inspect.getsource(RTCRtpReceiver.__init__)
    assert "self.__active_ssrc[packet.ssrc]" in inspect.getsource(RTCRtpReceiver._handle_rtp_packet)

    class Source:
        def __init__(self, source: int) -> None:
            self.source = source

    class Receiver:
        _RTCRtpReceiver__rtx_ssrc = {222: 111}

        def getSynchronizationSources(self) -> list[Source]:  # noqa: N802 - aiortc's name
            return [Source(222), Source(111)]

    assert media_ssrc(Receiver()) == 111


def test_senders_answer_nacks_through_the_wrapped_retransmit() -> None:
    """NACKs are answered within a RetransmitBudget by wrapping this method; it reads these."""
    source = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "await self._retransmit(seq)" in source
    assert list(inspect.signature(RTCRtpSender._retransmit).parameters) == ["self", "sequence_number"]
    init = inspect.getsource(RTCRtpSender.__init__)
    for name in ("__rtp_history", "__rtp_timestamp", "__octet_count", "__rtt"):
        assert f"self.{name}" in init, name
    assert "self.__rtp_timestamp = packet.timestamp" in inspect.getsource(RTCRtpSender._run_rtp)


def test_publishers_are_told_what_to_send_instead_of_the_receivers_estimate() -> None:
    """Publishers get the MCU's REMB (``Publisher.ask``): the receiver's own estimator is
    switched off through this private name, and the REMB goes out as the receiver sends RTCP."""
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    init = inspect.getsource(RTCRtpReceiver.__init__)
    assert "self.__remote_bitrate_estimator = RemoteBitrateEstimator()" in init
    assert "self.__rtcp_ssrc: Optional[int] = None" in init
    assert "if self.__remote_bitrate_estimator is not None:" in inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert inspect.iscoroutinefunction(RTCRtpReceiver._send_rtcp)
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp).parameters) == ["self", "packet"]


def test_a_constrained_subscribers_video_is_paced_where_the_transport_sends() -> None:
    """``Pacer`` waits inside this method (wrapped): every RTP and RTCP packet of a connection
    passes it, RTP protected here, so the wait is before encryption and in sending order."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    source = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert inspect.iscoroutinefunction(RTCDtlsTransport._send_rtp)
    assert list(inspect.signature(RTCDtlsTransport._send_rtp).parameters) == ["self", "data"]
    assert "self._tx_srtp.protect(data)" in source and "await self.transport._send(data)" in source
    sender = inspect.getsource(RTCRtpSender._run_rtp)
    assert "await self.transport._send_rtp(packet_bytes)" in sender


def test_rtp_forwarding_taps_the_receiver_before_its_jitter_buffer() -> None:
    """``Publisher.on_rtp`` gets every packet through the wrapped ``_handle_rtp_packet`` (after
    SRTP unprotect, RTX still wrapped: unwrapped with aiortc's own ``unwrap_rtx`` and the
    receiver's ``__codecs`` and ``__rtx_ssrc``)."""
    from aiortc.codecs import is_rtx
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtcrtpreceiver import RTCRtpReceiver
    from aiortc.rtp import unwrap_rtx

    assert list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters) == ["self", "packet", "arrival_time_ms"]
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "if not self._enabled:" in handle and "self.__codecs.get(packet.payload_type)" in handle
    assert "unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)" in handle
    assert list(inspect.signature(unwrap_rtx).parameters) == ["rtx", "payload_type", "ssrc"] and callable(is_rtx)
    assert "await receiver._handle_rtp_packet(packet, arrival_time_ms=" in inspect.getsource(RTCDtlsTransport._handle_rtp_data)


def test_rtp_forwarding_binds_at_the_senders_negotiation_and_feeds_its_reports() -> None:
    """``ForwardTrack.bind`` runs after ``RTCRtpSender.send`` (wrapped); the native sink writes the
    counters and timestamps aiortc's sender reports (RTCP SR) read, by their private names."""
    assert inspect.iscoroutinefunction(RTCRtpSender.send)
    assert list(inspect.signature(RTCRtpSender.send).parameters) == ["self", "parameters"]
    init = inspect.getsource(RTCRtpSender.__init__)
    for name in ("__ntp_timestamp", "__rtp_timestamp", "__octet_count", "__packet_count"):
        assert f"self.{name}" in init, name
    rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    assert "ntp_timestamp=self.__ntp_timestamp" in rtcp and "rtp_timestamp=self.__rtp_timestamp" in rtcp
    assert "self._rtx_ssrc" in init and "self._ssrc" in init


def test_rtp_forwarding_sends_straight_to_the_ice_pairs_socket() -> None:
    """The native sink (``mcu_vm/_fastfwd.c``) does what ``RTCDtlsTransport._send_rtp`` and
    aioice's ``sendto`` do, without their coroutines: checks ``_state``, protects with
    ``_tx_srtp`` (pylibsrtp's session: its ``_srtp`` pointer and libsrtp 2's ``srtp_protect``,
    called by address), counts, and sends from the nominated pair's socket (asyncio's datagram
    transport, read for ``_closing``; aioice's TURN transport has none and takes aiortc's path)."""
    import asyncio.selector_events

    import aioice.turn
    import pylibsrtp
    from aiortc.rtcdtlstransport import RTCDtlsTransport, State
    from aiortc.rtcicetransport import RTCIceTransport
    from pylibsrtp._binding import ffi, lib

    send = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "self._state != State.CONNECTED" in send and "self._tx_srtp.protect(data)" in send
    assert "self.__tx_bytes += len(data)" in send and "self.__tx_packets += 1" in send
    ice = inspect.getsource(RTCIceTransport.__init__)
    assert "self._connection = gatherer._connection" in ice and "self._send = self._connection.send" in ice
    sendto = inspect.getsource(aioice.ice.Connection.sendto)
    assert "active_pair = self._nominated.get(component)" in sendto
    assert "await active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert "self.transport.sendto(data, addr)" in inspect.getsource(aioice.ice.StunProtocol.send_data)
    assert "self._nominated.clear()" in inspect.getsource(aioice.ice.Connection.close)  # a closed connection: no pair
    assert not issubclass(aioice.turn.TurnTransport, asyncio.DatagramTransport)
    assert "self._sock = sock" in inspect.getsource(asyncio.selector_events._SelectorTransport.__init__)
    assert "self._closing = True" in inspect.getsource(asyncio.selector_events._SelectorTransport.close)
    assert "self._srtp = ffi.gc(srtp" in inspect.getsource(pylibsrtp.Session.__init__)
    assert ffi.typeof(ffi.addressof(lib, "srtp_protect")).cname == "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
    assert pylibsrtp.SRTP_MAX_TRAILER_LEN <= 144  # the room the native sink leaves behind a packet
    assert State.CONNECTED


def test_round_trips_are_read_against_when_the_named_sender_report_left() -> None:
    """``note_sender_report`` reads the newest report's LSR and departure time by these private
    names, set as the report is built, before it is sent."""
    rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    assert "self.__lsr = ((self.__ntp_timestamp) >> 16) & 0xFFFFFFFF" in rtcp
    assert "self.__lsr_time = time.time()" in rtcp
    assert rtcp.index("self.__lsr_time = time.time()") < rtcp.index("await self._send_rtcp(packets)")


def test_a_sender_reports_lsr_names_one_departure_or_none() -> None:
    from mcu_vm.passthrough import SENDER_REPORTS_KEPT, note_sender_report

    class Sender:
        pass

    sender = Sender()
    assert note_sender_report(sender) == {}  # no report sent yet
    for i in range(SENDER_REPORTS_KEPT + 2):
        sender.__dict__.update(_RTCRtpSender__lsr=1000 + i, _RTCRtpSender__lsr_time=50.0 + i)
        note_sender_report(sender)
    seen = note_sender_report(sender)
    assert len(seen) == SENDER_REPORTS_KEPT and seen[1000 + SENDER_REPORTS_KEPT + 1] == 50.0 + SENDER_REPORTS_KEPT + 1
    sender.__dict__["_RTCRtpSender__lsr_time"] = 99.0  # a paused stream: its next report repeats the NTP time
    assert 1000 + SENDER_REPORTS_KEPT + 1 not in note_sender_report(sender)
