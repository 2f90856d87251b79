"""The links a meeting is reached by (pure: no I/O).

``/meet/{key}`` for everyone; the organizer's link carries a secret derived from the meeting
key in the URL fragment (browsers never send it); a vanity link ``/meet/{vanity}/{slug}`` is
looked up through ``vanity_links/{vanity_link_id}``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import quote

from webmeeting import crypto
from webmeeting.settings import Settings


def meeting_url(settings: Settings, key: str) -> str:
    return f"{settings.public_base_url}/meet/{key}"


def organizer_url(settings: Settings, key: str) -> str:
    """The organizer's link: the secret rides in the fragment, which browsers never send."""
    return f"{meeting_url(settings, key)}#organizer={crypto.organizer_secret(settings.secret_key, key)}"


def vanity_url(settings: Settings, vanity: str, slug: str) -> str:
    return f"{settings.public_base_url}/meet/{quote(vanity, safe='')}/{slug}"


def vanity_link_id(vanity: str, slug: str) -> str:
    return hashlib.sha256(f"{vanity.casefold()}\n{slug}".encode()).hexdigest()


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-")
    return slug or "meeting"
