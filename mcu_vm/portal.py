"""The MCU's calls to the portal: heartbeats and participant events (batched, retried)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp

log = logging.getLogger("mcu.portal")

EVENT_BATCH = 100
RETRY_MAX_S = 30.0


class PortalClient:
    def __init__(self, portal_url: str, mcu_id: str, secret: str) -> None:
        self.portal_url = portal_url
        self.mcu_id = mcu_id
        self._headers = {"X-MCU-Id": mcu_id, "Authorization": f"Bearer {secret}"}
        self._session: aiohttp.ClientSession | None = None
        self._events: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), trust_env=False)
        return self._session

    async def post(self, path: str, body: dict[str, Any]) -> bool:
        try:
            async with self._http().post(self.portal_url + path, json=body, headers=self._headers) as resp:
                if resp.status >= 300:
                    log.warning("portal %s answered %s: %s", path, resp.status, (await resp.text())[:200])
                return resp.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("portal %s unreachable: %s", path, exc)
            return False

    def event(self, type_: str, meeting_key: str, participant_id: str, **fields: Any) -> None:
        """Queue a participant event (joined | left | reconnected) with an id and server time."""
        self._events.append(
            {
                "id": uuid.uuid4().hex,
                "type": type_,
                "meeting_key": meeting_key,
                "participant_id": participant_id,
                "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "mcu_id": self.mcu_id,
                **fields,
            }
        )
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
                if await self.post("/api/mcu/v1/events", {"events": batch}):
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
