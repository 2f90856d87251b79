"""The license registry on the real emulator: a duplicate key is a conflict, and only that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.launcher import Platform
from webmeeting.errors import Conflict
from webmeeting.services.licenses import add_license

pytestmark = pytest.mark.integration


def test_adding_a_license_twice_is_a_conflict(platform: Platform) -> None:
    fields = {"edition": "pro", "expires_at": datetime.now(UTC) + timedelta(days=3), "max_participants": 5, "recording": False}
    first = add_license(**fields)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="already exists"):
        add_license(key=first.key, **fields)  # type: ignore[arg-type]
