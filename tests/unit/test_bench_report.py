from pathlib import Path

from bench.report import write_section


def test_a_section_is_added_once_then_replaced_in_place(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n")
    write_section("x", "X cost", "first", doc)
    doc.write_text(doc.read_text() + "\nprose after\n")
    write_section("x", "X cost", "second", doc)
    text = doc.read_text()
    assert text.count("## X cost") == 1 and "second" in text and "first" not in text and "prose after" in text
