"""Outside in: a PBX (its DNS under the attacker's control) cannot make the platform call
loopback, private, link-local or metadata addresses, follow a redirect, or swallow an unbounded
answer; an IP literal is no PBX FQDN."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import assert_error, dump_firestore, ext, join_meeting, meeting
from tests.integration.test_dialin import NUMBERS, _in_meeting, _poll

pytestmark = pytest.mark.integration
UNAVAILABLE = {"status": "unavailable", "conference_number": None, "dial_in": []}


class Listener:
    """A TCP listener that counts who connects (the platform must not)."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 55\r\n\r\n")
            conn.sendall(b'{"conference_number":"666","dial_in":[],"stolen":"yes"}')
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def sim_port(platform: Platform) -> int:
    return int(platform.endpoints["pbx_simulator"].rsplit(":", 1)[1])


@pytest.fixture
def evil_listener(sim_port: int) -> Iterator[Listener]:
    """On another loopback address, the simulator's port: what a PBX's DNS could point us at."""
    listener = Listener("127.0.0.2", sim_port)
    yield listener
    listener.close()


def _dialin_of(platform: Platform, pbx: PbxClient, fqdn: str, **register: object) -> dict[str, object]:
    platform.register_pbx(fqdn, pbx.pbx_id, pbx.api_secret, NUMBERS, **register)  # type: ignore[arg-type]
    pbx.sync([ext("101")])
    body = pbx.put_meeting("m-egress", meeting("101")).json()
    key, secret = body["meeting_key"], body["organizer_url"].split("#organizer=")[1]
    organizer = join_meeting(platform, key, "Ada", secret)
    _, data = _in_meeting(organizer, key, lambda: _poll(platform, organizer["token"]))
    return dict(data)


@pytest.mark.parametrize("address", ["127.0.0.2", "10.0.0.7", "169.254.169.254", "100.64.0.9", "224.0.0.1", "::1", "fd00::7"])
def test_a_pbx_name_resolving_to_a_non_public_address_is_not_called(
    platform: Platform, pbx: PbxClient, evil_listener: Listener, address: str
) -> None:
    assert _dialin_of(platform, pbx, "pbx.example.com", address=address) == UNAVAILABLE
    assert evil_listener.connections == 0


def test_redirects_are_not_followed(platform: Platform, pbx: PbxClient) -> None:
    target = Listener("127.0.0.1")
    try:
        redirect = {"dialin_redirect": f"http://127.0.0.1:{target.port}/latest/meta-data"}
        assert _dialin_of(platform, pbx, "pbx.example.com", behaviour=redirect) == UNAVAILABLE
        assert target.connections == 0
    finally:
        target.close()


def test_an_oversized_answer_is_refused(platform: Platform, pbx: PbxClient) -> None:
    assert _dialin_of(platform, pbx, "pbx.example.com", behaviour={"dialin_padding": 2_000_000}) == UNAVAILABLE


def test_the_simulators_exact_address_is_admitted(platform: Platform, pbx: PbxClient) -> None:
    assert _dialin_of(platform, pbx, "pbx.example.com") == {"status": "ok", **NUMBERS}  # the guard is not a wall


@pytest.mark.parametrize("fqdn", ["127.0.0.1", "169.254.169.254", "10.0.0.1", "[::1]"])
def test_ip_literals_are_refused_at_activation(api: str, license_key: str, fqdn: str) -> None:
    before = dump_firestore()
    resp = PbxClient(api).activate(license_key, fqdn, "meet.example.com")
    assert_error(resp, 400, "invalid_request")
    assert dump_firestore() == before
