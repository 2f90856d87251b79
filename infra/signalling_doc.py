"""Writes what is generated from the signalling contract (``webmeeting/domain/signalling.py``):
the page's ES module ``functions/meeting_page/assets/signalling.js`` and the JSON Schema
``docs/signalling.schema.json``:

    .venv/bin/python -m infra.signalling_doc   (make signalling)

``tests/unit/test_signalling_contract.py`` fails when either differs from the contract."""

from __future__ import annotations

import json
from pathlib import Path

from webmeeting.domain import signalling

ROOT = Path(__file__).resolve().parent.parent
PAGE_MODULE = ROOT / "functions" / "meeting_page" / "assets" / "signalling.js"
SCHEMA = ROOT / "docs" / "signalling.schema.json"


def schema_text() -> str:
    return json.dumps(signalling.schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    PAGE_MODULE.write_text(signalling.page_module())
    SCHEMA.write_text(schema_text())
    print(f"wrote {PAGE_MODULE.relative_to(ROOT)} and {SCHEMA.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
