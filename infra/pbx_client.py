"""A PBX's side of the PBX API: a signing HTTP client (used by the simulator, tests, benches)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from webmeeting.domain.signing import signed_headers


class SourceAddressAdapter(HTTPAdapter):
    """Connect from a chosen local address (e.g. 127.0.0.2 to play another PBX's IP)."""

    def __init__(self, source_ip: str, **kwargs: Any) -> None:
        self.source_ip = source_ip
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(source_ip: str | None = None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never a proxy from the environment: everything stays on loopback
    if source_ip:
        adapter = SourceAddressAdapter(source_ip)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
    return s


@dataclass
class PbxClient:
    """Talks to ``{portal}/api/pbx/v1`` as one PBX. ``clock_offset_s`` shifts its signing clock."""

    api_base: str
    pbx_id: str = ""
    api_secret: str = ""
    source_ip: str | None = None
    clock_offset_s: float = 0.0
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session = session_from(self.source_ip)

    @property
    def path_base(self) -> str:
        return urlsplit(self.api_base).path

    def activate(self, license_key: str, pbx_fqdn: str, webmeeting_fqdn: str, pbx_version: str = "20.0.1") -> requests.Response:
        body = {"license_key": license_key, "pbx_fqdn": pbx_fqdn, "webmeeting_fqdn": webmeeting_fqdn, "pbx_version": pbx_version}
        resp = self.session.post(f"{self.api_base}/activate", json=body, timeout=30)
        if resp.status_code == 201:
            data = resp.json()
            self.pbx_id, self.api_secret = data["pbx_id"], data["api_secret"]
        return resp

    def signed(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
    ) -> requests.Response:
        """A signed call; ``path`` is relative to the API base and may carry a query."""
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        target = self.path_base + path
        ts = int(time.time() + self.clock_offset_s) if timestamp is None else timestamp
        h = signed_headers(self.pbx_id, self.api_secret.encode(), method, target, data, ts)
        if data:
            h["Content-Type"] = "application/json; charset=utf-8"
        h.update(headers or {})
        return self.session.request(method, self.api_base + path, data=data, headers=h, timeout=120)

    def sync(self, extensions: list[dict[str, Any]]) -> requests.Response:
        return self.signed("PUT", "/sync", {"extensions": extensions})

    def put_meeting(self, pbx_meeting_id: str, meeting: dict[str, Any]) -> requests.Response:
        return self.signed("PUT", f"/meetings/{pbx_meeting_id}", meeting)

    def delete_meeting(self, pbx_meeting_id: str) -> requests.Response:
        return self.signed("DELETE", f"/meetings/{pbx_meeting_id}")

    def reports(self, status: str = "pending") -> requests.Response:
        return self.signed("GET", f"/reports?status={status}")

    def ack(self, report_id: str) -> requests.Response:
        return self.signed("POST", f"/reports/{report_id}/ack")
