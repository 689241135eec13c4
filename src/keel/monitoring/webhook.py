"""Alert webhooks, behind an SSRF guard: an alert's URL is the user's text, and the process sending it may sit
inside a network it should not reach for them. Only http(s) URLs whose host resolves to public addresses are
called (no private, loopback, link-local, multicast or reserved ones) unless the workspace setting
``webhook_allow_private`` says otherwise; the check is made when the monitor is created and again, on the
resolved addresses, right before each call."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from keel.errors import InvalidInput

__all__ = ["check_webhook", "send_webhook"]

TIMEOUT_S = 5.0


def check_webhook(url: str, *, allow_private: bool = False) -> str:
    """``url`` if it may be called; InvalidInput naming the reason otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"webhook {url!r}: give an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise InvalidInput(f"webhook {url!r}: credentials in the URL are refused; put a token in its path or query")
    try:
        found = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInput(f"webhook {url!r}: its host {parts.hostname!r} does not resolve ({exc})") from None
    if not allow_private:
        for address in found:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not ip.is_global or ip.is_multicast:
                raise InvalidInput(f"webhook {url!r}: {parts.hostname} resolves to {ip}, a private, loopback, "
                                   "link-local or reserved address; such targets need the workspace setting "
                                   "webhook_allow_private = true")
    return url


def send_webhook(url: str, payload: dict[str, Any], *, allow_private: bool = False) -> str:
    """POST ``payload`` as JSON; returns ``sent`` or why it was not (a failing webhook never fails a run)."""
    try:
        check_webhook(url, allow_private=allow_private)
        reply = httpx.post(url, content=orjson.dumps(payload, default=str), timeout=TIMEOUT_S,
                           headers={"content-type": "application/json", "user-agent": "keel-alerts"},
                           follow_redirects=False)  # a redirect could lead anywhere the guard did not check
    except InvalidInput as exc:
        return f"refused: {exc.message}"
    except httpx.HTTPError as exc:
        return f"failed: {type(exc).__name__}: {exc}"[:500]
    return "sent" if reply.status_code < 300 else f"failed: HTTP {reply.status_code}"
