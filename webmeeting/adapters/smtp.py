"""SMTP adapter: send one message. Settings: WEBMEETING_SMTP_HOST, _PORT, _TLS (none |
starttls | tls), _USER, _PASSWORD (production: from Secret Manager), _FROM."""

from __future__ import annotations

import os
import smtplib
import ssl
from email.message import EmailMessage

TIMEOUT_S = 15


class MailNotSent(Exception):
    """The SMTP server could not be reached or refused the message (retry later)."""


def sender() -> str:
    return os.environ.get("WEBMEETING_SMTP_FROM", "WebMeeting <no-reply@webmeeting.local>")


def send(message: EmailMessage) -> None:
    host = os.environ.get("WEBMEETING_SMTP_HOST", "127.0.0.1")
    port = int(os.environ.get("WEBMEETING_SMTP_PORT", "25"))
    mode = os.environ.get("WEBMEETING_SMTP_TLS", "none")
    try:
        if mode == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_S, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=TIMEOUT_S)
        with smtp:
            if mode == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            user = os.environ.get("WEBMEETING_SMTP_USER")
            if user:
                smtp.login(user, os.environ.get("WEBMEETING_SMTP_PASSWORD", ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailNotSent(str(exc)) from exc
