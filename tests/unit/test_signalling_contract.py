"""The page <-> MCU signalling contract (``webmeeting/domain/signalling.py``): generated files
current, the page built against its names, the MCU's parser strict."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.signalling_doc import PAGE_MODULE, SCHEMA, schema_text
from webmeeting.domain import signalling as contract

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "functions" / "meeting_page" / "assets"
PAGE = {p.name: p.read_text() for p in ASSETS.glob("*.js") if p.name != "signalling.js"}


def test_the_generated_files_are_current() -> None:
    assert PAGE_MODULE.read_text() == contract.page_module(), "run `make signalling`"
    assert SCHEMA.read_text() == schema_text(), "run `make signalling`"


def test_the_page_sends_only_through_the_contract() -> None:
    text = "\n".join(PAGE.values())
    sent = set(re.findall(r"\bSEND\.(\w+)", text))
    assert sent == {contract._type_name(m) for m in contract.CLIENT_TYPES}
    for name, source in PAGE.items():
        assert "JSON.stringify({ type" not in source, f"{name} builds a signalling message by hand"
        assert ".send(JSON" not in source, f"{name} sends a hand-made frame"


def test_the_page_handles_every_message_the_mcu_sends() -> None:
    handled = set(re.findall(r"case RECEIVE\.(\w+):", PAGE["connection.js"]))
    assert handled == {contract._type_name(m) for m in contract.SERVER_TYPES}


def test_the_mcu_sends_only_models_of_the_contract() -> None:
    for path in (ROOT / "mcu_vm").glob("*.py"):
        source = path.read_text()
        assert not re.search(r"send(_json)?\(\s*\{", source), f"{path.name} sends a hand-made message"


VALID = [
    {"type": "join", "token": "a.b.c", "meeting_key": "k" * 22},
    {"type": "publish", "sdp": "v=0"},
    {"type": "subscribe_answer", "publisher_id": "p" * 24, "sdp": "v=0"},
    {"type": "mute", "audio": False},
    {"type": "mute", "audio": True, "video": False},
    {"type": "record", "action": "start", "grant": "g.r.ant"},
    {"type": "chat", "text": "<b>hi</b> & bye"},
    {"type": "chat", "text": "just you", "to": "p" * 24},
    {"type": "hand", "up": True},
    {"type": "hand", "up": False, "participant_id": "p" * 24},
    {"type": "react", "emoji": "👏"},
    {"type": "changed", "what": "documents"},
    {"type": "leave"},
]


@pytest.mark.parametrize("message", VALID)
def test_the_contract_admits_what_the_page_sends(message: dict[str, object]) -> None:
    assert contract.parse_client(message).type == message["type"]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "join", "token": 12, "meeting_key": "k"},
        {"type": "join", "token": "t"},
        {"type": "publish", "sdp": "v" * (contract.MAX_SDP_CHARS + 1)},
        {"type": "publish", "sdp": ""},
        {"type": "publish", "sdp": "v=0", "extra": 1},
        {"type": "subscribe_answer", "publisher_id": "../../x", "sdp": "v=0"},
        {"type": "mute", "audio": "no"},
        {"type": "mute", "audio": 1},
        {"type": "record", "action": "pause", "grant": "g"},
        {"type": "kick", "participant_id": "p" * 24},
        {"type": "chat", "text": "x" * (contract.MAX_CHAT_CHARS + 1)},
        {"type": "chat", "text": " \n\t "},
        {"type": "chat", "text": "hi", "to": "<script>"},
        {"type": "hand", "up": "yes"},
        {"type": "react", "emoji": "💩"},
        {"type": "changed", "what": "everything"},
        {"sdp": "v=0"},
        ["publish"],
        "leave",
        None,
    ],
)
def test_the_contract_refuses_anything_else(message: object) -> None:
    with pytest.raises(contract.InvalidMessage):
        contract.parse_client(message)


def test_every_error_code_has_its_fixed_text() -> None:
    codes = set(contract.ErrorCode.__args__)  # type: ignore[attr-defined]
    assert codes == set(contract.ERROR_TEXT)
    for code in codes:
        assert contract.wire(contract.error(code)) == {"type": "error", "code": code, "message": contract.ERROR_TEXT[code]}
