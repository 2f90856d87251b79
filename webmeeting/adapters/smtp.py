"""SMTP adapter: send one message. Settings: WEBMEETING_SMTP_HOST, _PORT, _TLS (none |
starttls | tls), _USER, _PASSWORD (production: from Secret Manager), _FROM."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from webmeeting import runtime

TIMEOUT_S = 15


class MailNotSent(Exception):
    """The SMTP server could not be reached or refused the message (retry later)."""


def sender() -> str:
    return runtime.backends().smtp_from


def send(message: EmailMessage) -> None:
    b = runtime.backends()
    host, port, mode = b.smtp_host, b.smtp_port, b.smtp_tls
    try:
        if mode == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_S, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=TIMEOUT_S)
        with smtp:
            if mode == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if b.smtp_user:
                smtp.login(b.smtp_user, b.smtp_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailNotSent(str(exc)) from exc
