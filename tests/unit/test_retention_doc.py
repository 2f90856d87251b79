"""docs/retention.md is the retention table as the code has it (regenerate: make retention-doc)."""

from __future__ import annotations

from pathlib import Path

from infra.retention_doc import proofs_by_rule, render
from webmeeting.domain.retention import RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "retention.md"


def test_the_doc_is_generated_from_the_table() -> None:
    assert DOC.read_text() == render(), "docs/retention.md is stale: run `make retention-doc`"


def test_every_rule_appears_with_its_duration_and_policy_sentence() -> None:
    text = DOC.read_text()
    for rule in RULES:
        assert f"`{rule.name}`" in text and rule.policy in text


def test_every_rule_enforced_in_the_application_has_a_test() -> None:
    proofs = proofs_by_rule()
    missing = [r.name for r in RULES if r.name not in proofs]
    assert not missing, missing
