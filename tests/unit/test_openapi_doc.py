from pathlib import Path

from webmeeting.cli.openapi import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_checked_in_openapi_matches_the_code() -> None:
    assert DOC.read_text() == render(), "run `make openapi` and commit docs/openapi.json"
