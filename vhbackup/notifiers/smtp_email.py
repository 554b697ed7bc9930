"""Alerts by email over SMTP (smtplib): optional STARTTLS and login.

Named ``smtp_email`` so that it never shadows the standard library's
``email`` package. The SMTP password is read from its file at send time
and goes to the server only, after STARTTLS when that is enabled.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from vhbackup.events import render
from vhbackup.policy import Email

NAME = "email"


def describe(settings: Email) -> str:
    return f"email to {', '.join(settings.to)} via {settings.smtp_host}:{settings.smtp_port}"


def build_message(settings: Email, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body)
    return msg


def _password(settings: Email) -> str:
    if not settings.password_file:
        return ""
    try:
        return Path(settings.password_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RuntimeError(f"cannot read notify.email.password_file {settings.password_file}: "
                           f"{exc.strerror}") from None


def send(settings: Email, event) -> None:
    subject, body = render(event)
    msg = build_message(settings, subject, body)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout) as smtp:
        smtp.ehlo()
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if settings.user:
            smtp.login(settings.user, _password(settings))
        smtp.send_message(msg)
