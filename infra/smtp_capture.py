"""Local SMTP server that keeps every mail it receives as one .eml file in an inbox folder.

Usage: python -m infra.smtp_capture --port PORT --inbox DIR
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

MAX_MESSAGE_BYTES = 30 * 1024 * 1024  # larger than any mail the platform sends


class InboxHandler:
    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{secrets.token_hex(4)}.eml"
        tmp = self.inbox / f".{name}.tmp"
        header = f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        tmp.write_bytes(header.encode() + envelope.original_content)
        os.replace(tmp, self.inbox / name)  # readers never see half a mail
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--inbox", type=Path, required=True)
    args = parser.parse_args()
    args.inbox.mkdir(parents=True, exist_ok=True)
    controller = Controller(InboxHandler(args.inbox), hostname=args.host, port=args.port, data_size_limit=MAX_MESSAGE_BYTES)
    controller.start()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
