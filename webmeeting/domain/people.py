"""How people are named where the platform shows them (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def display_name(ext: Mapping[str, Any], fallback: str = "The organizer") -> str:
    """An extension's name as meetings, mails and reports show it: first and last name, or
    ``fallback`` when it has neither."""
    return " ".join(str(p) for p in (ext.get("first_name"), ext.get("last_name")) if p) or fallback
