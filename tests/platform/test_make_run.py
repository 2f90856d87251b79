"""`make run`'s program from the outside: it starts everything, writes endpoints.json, runs the
demo, prints the Quick Meeting links, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import re
import signal
import smtplib
import socket
import time
from email.message import EmailMessage
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
import requests

from tests.platform.launch import start_make_run
from webmeeting.domain.signing import signed_headers

pytestmark = pytest.mark.platform


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _ports(endpoints: dict) -> list[int]:  # type: ignore[type-arg]
    urls = [
        endpoints["portal"],
        endpoints["storage_emulator"],
        endpoints["pbx_simulator"],
        "http://" + endpoints["firestore_emulator"],
        "http://" + endpoints["tasks_emulator"],
    ]
    return [int(u.rsplit(":", 1)[1].split("/")[0]) for u in urls] + [endpoints["smtp"]["port"], endpoints["dns"]["port"]]


def test_make_run_demo_and_clean_shutdown(tmp_path: Path) -> None:
    proc, state, out = start_make_run(tmp_path)
    endpoints_file = state / "endpoints.json"
    try:
        ep = json.loads(endpoints_file.read_text())
        for key in (
            "portal",
            "pbx_api",
            "mcus",
            "smtp",
            "dns",
            "firestore_emulator",
            "storage_emulator",
            "dev_license_keys",
            "pbx_simulator",
        ):
            assert key in ep, key
        assert len(ep["dev_license_keys"]) >= 2 and ep["pbx_api"] == ep["portal"] + "/api/pbx/v1"
        text = out.read_text()
        links = re.findall(r"^\s+(\d+)\s+(http://127\.0\.0\.1:\d+/meet/\S+)", text, re.M)
        assert {n for n, _ in links} == {"101", "102", "104"}, text
        assert "103  disabled: missing_email" in text
        # the operator console's dev sign-in, as printed
        assert f"console       {ep['console']['url']}" in text
        signs = dict(re.findall(r"^\s+sign in as\s+(\S+) \((?:admin|support)\), password (\S+)", text, re.M))
        assert set(signs) == {"admin@webmeeting.local", "support@webmeeting.local"}, text
        for email, password in signs.items():
            assert requests.get(ep["console"]["url"], auth=(email, password), timeout=10).status_code == 200
        for _, link in links:
            page = requests.get(link, timeout=10)
            assert page.status_code == 200 and "<html" in page.text

        # the dev licenses are left unbound by the demo: one activates
        resp = requests.post(
            ep["pbx_api"] + "/activate",
            timeout=10,
            json={
                "license_key": ep["dev_license_keys"][0],
                "pbx_fqdn": "pbx.other.test",
                "webmeeting_fqdn": "meet.other.test",
                "pbx_version": "20",
            },
        )
        assert resp.status_code == 201, resp.text

        # the PBX simulator answers the platform's signed dial-in request
        sim = json.loads((state / "pbx-sim" / "state.json").read_text())
        target = "/webmeeting/v1/dialin?meeting=demo-1"
        h = signed_headers(sim["pbx_id"], sim["api_secret"].encode(), "GET", target, b"", int(time.time()))
        host = {"Host": "pbx.demo.webmeeting.test"}
        dialin = requests.get(ep["pbx_simulator"] + target, headers={**h, **host}, timeout=10)
        assert dialin.status_code == 200 and dialin.json()["conference_number"]
        assert requests.get(ep["pbx_simulator"] + target, headers=host, timeout=10).status_code == 401

        # DNS knows the demo PBX and nothing else
        q = dns.query.udp(dns.message.make_query("pbx.demo.webmeeting.test", "A"), "127.0.0.1", port=ep["dns"]["port"], timeout=2)
        assert [r.to_text() for rr in q.answer for r in rr] == ["127.0.0.1"]
        q = dns.query.udp(dns.message.make_query("unknown.example.com", "A"), "127.0.0.1", port=ep["dns"]["port"], timeout=2)
        assert q.rcode() == dns.rcode.NXDOMAIN

        # the SMTP server keeps what it receives
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", "hello"
        msg.set_content("body")
        with smtplib.SMTP(ep["smtp"]["host"], ep["smtp"]["port"], timeout=10) as smtp:
            smtp.send_message(msg)
        assert any("hello" in p.read_text() for p in Path(ep["smtp"]["inbox_dir"]).glob("*.eml"))

        ports = _ports(ep)
        assert all(_port_open(p) for p in ports)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_port_open(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in ports if _port_open(p)], "a process outlived make run"
    assert not endpoints_file.exists()
