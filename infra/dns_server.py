"""Local authoritative DNS server for the PBX FQDNs it knows (UDP and TCP, dnspython).

Records come from a JSON zone file, re-read when it changes:
    {"pbx.example.com": {"A": ["127.0.0.1"]}, "gone.example.com": null}
Names absent from the file answer NXDOMAIN; a name mapped to null answers SERVFAIL
(a broken DNS, as opposed to a missing name).

Usage: python -m infra.dns_server --port PORT --zone FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

TTL_S = 5  # short: tests change the zone and expect the next query to see it


class Zone:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = -1.0
        self._records: dict[str, Any] = {}

    def records(self) -> dict[str, Any]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        if mtime != self._mtime:
            try:
                self._records = {k.lower().rstrip("."): v for k, v in json.loads(self.path.read_text() or "{}").items()}
                self._mtime = mtime
            except json.JSONDecodeError:
                pass  # half-written file: keep the previous records until it is complete
        return self._records


def answer(zone: Zone, wire: bytes) -> bytes | None:
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - garbage on the wire gets no answer
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if not query.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    q = query.question[0]
    name = q.name.to_text().lower().rstrip(".")
    records = zone.records()
    if name not in records:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif records[name] is None:
        response.set_rcode(dns.rcode.SERVFAIL)
    else:
        values = records[name].get(dns.rdatatype.to_text(q.rdtype), [])
        if values:
            response.answer.append(dns.rrset.from_text_list(q.name, TTL_S, dns.rdataclass.IN, q.rdtype, values))
    return response.to_wire()


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = answer(self.zone, data)
        if reply is not None:
            self.transport.sendto(reply, addr)


async def serve(host: str, port: int, zone: Zone) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(zone), local_addr=(host, port))

    async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            reply = answer(zone, await reader.readexactly(length))
            if reply is not None:
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(tcp, host, port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    transport.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--zone", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, Zone(args.zone)))


if __name__ == "__main__":
    main()
