"""The MCU's calls to the portal: heartbeats and participant events (batched, retried).

The MCU proves who it is on every call: locally (``auth="secret"``) with its own secret; on
Compute Engine (``auth="gce"``) with a Google-signed ID token of the VM's service account, asked
from the metadata server with ``format=full`` so that it names the instance (the portal checks
the instance name against the MCU id). A batch the portal refuses with a 4xx other than 401/429
can never succeed: it is dropped (and logged), not retried forever."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp

from webmeeting.domain.api import McuEvent

log = logging.getLogger("mcu.portal")

EVENT_BATCH = 100
RETRY_MAX_S = 30.0
METADATA_IDENTITY = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity"
TOKEN_REFRESH_S = 300  # ask for a new ID token this long before the current one expires
RETRYABLE = {401, 408, 425, 429}  # and every 5xx: the portal may accept the same call later


def audience(portal_url: str) -> str:
    """The ID token's audience: the MCU API under the portal's public URL (mcu_api checks it)."""
    return portal_url.rstrip("/") + "/api/mcu/v1"


class PortalClient:
    def __init__(self, portal_url: str, mcu_id: str, secret: str, auth: str = "secret") -> None:
        self.portal_url = portal_url
        self.mcu_id = mcu_id
        self.auth = auth
        self._secret = secret
        self._token: tuple[str, float] = ("", 0.0)  # (ID token, expiry as unix time)
        self._session: aiohttp.ClientSession | None = None
        self._events: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), trust_env=False)
        return self._session

    async def _credentials(self) -> dict[str, str]:
        if self.auth == "secret":
            return {"X-MCU-Id": self.mcu_id, "Authorization": f"Bearer {self._secret}"}
        token, expires = self._token
        if time.time() > expires - TOKEN_REFRESH_S:
            params = {"audience": audience(self.portal_url), "format": "full"}
            async with self._http().get(METADATA_IDENTITY, params=params, headers={"Metadata-Flavor": "Google"}) as resp:
                resp.raise_for_status()
                token = (await resp.text()).strip()
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            self._token = (token, float(claims.get("exp", time.time() + 600)))
        return {"X-MCU-Id": self.mcu_id, "Authorization": f"Bearer {token}"}

    async def call(self, path: str, body: dict[str, Any]) -> int:
        """POST to the portal; the status, or 0 when it could not be reached."""
        try:
            headers = await self._credentials()
            async with self._http().post(self.portal_url + path, json=body, headers=headers) as resp:
                if resp.status >= 300:
                    log.warning("portal %s answered %s: %s", path, resp.status, (await resp.text())[:200])
                return resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("portal %s unreachable: %s", path, exc.__class__.__name__)
            return 0

    async def post(self, path: str, body: dict[str, Any]) -> bool:
        return (await self.call(path, body)) in range(200, 300)

    def event(self, type_: str, meeting_key: str, participant_id: str, **fields: Any) -> None:
        """Queue a participant event (joined | left | reconnected) with an id and server time."""
        event = McuEvent(
            id=uuid.uuid4().hex,
            type=type_,  # type: ignore[arg-type]
            meeting_key=meeting_key,
            participant_id=participant_id,
            at=datetime.now(UTC),
            mcu_id=self.mcu_id,
            **fields,
        )
        self._events.append(event.model_dump(mode="json", exclude_none=True))
        self._wake.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._deliver())

    async def _deliver(self) -> None:
        delay = 0.5
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._events:
                batch = self._events[:EVENT_BATCH]
                status = await self.call("/api/mcu/v1/events", {"events": batch})
                if 200 <= status < 300 or (400 <= status < 500 and status not in RETRYABLE):
                    if status >= 300:
                        log.error("the portal refused %d events (%s): dropped, they cannot succeed", len(batch), status)
                    del self._events[: len(batch)]
                    delay = 0.5
                else:
                    await asyncio.sleep(delay)  # same ids on retry: the portal stores them once
                    delay = min(delay * 2, RETRY_MAX_S)

    async def flush(self, timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self._events and asyncio.get_running_loop().time() < deadline:
            self._wake.set()
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        if self._session:
            await self._session.close()
