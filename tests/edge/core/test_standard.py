"""The data standard: schema ids, topics, validation that names the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.standard import (
    AccessEvent,
    Record,
    StandardError,
    json_schemas,
    parse_payload,
    topic,
)

EXPECTED_KINDS = {
    "community",
    "door",
    "camera",
    "screen",
    "resident",
    "access_event",
    "visitor_pass",
    "report",
    "repair_ticket",
    "content_item",
    "playlist",
    "play_record",
    "device_health",
}


def test_all_record_types_of_the_standard_exist() -> None:
    assert EXPECTED_KINDS <= set(Record.REGISTRY)


def test_payload_round_trip_with_schema_id() -> None:
    ev = AccessEvent(
        id="a1",
        door_id="door-1",
        method="face",
        decision="granted",
        similarity=0.71,
        ts=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    p = ev.payload()
    assert p["schema"] == "qilu.v1.access_event"
    assert p["ts"] == "2026-01-02T03:04:05Z"
    assert parse_payload(json.loads(json.dumps(p))) == ev
    assert ev.topic_parts("box-1") == ("door", "door-1", "access")
    assert topic("qilu", "c1", *ev.topic_parts("box-1")) == "qilu/c1/door/door-1/access"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"id": "x"}, "schema:"),
        ({"schema": "acme.v9.door", "id": "x"}, "schema:"),
        ({"schema": "qilu.v1.nonsense", "id": "x"}, "unknown record kind"),
        (
            {
                "schema": "qilu.v1.access_event",
                "id": "a",
                "door_id": "d",
                "method": "face",
                "decision": "maybe",
            },
            "decision",
        ),
        (
            {
                "schema": "qilu.v1.access_event",
                "id": "a",
                "door_id": "d",
                "method": "face",
                "decision": "granted",
                "similarity": 3,
            },
            "similarity",
        ),
        (
            {
                "schema": "qilu.v1.access_event",
                "id": "a",
                "door_id": "d",
                "method": "face",
                "decision": "granted",
                "vendor_tag": 1,
            },
            "vendor_tag",
        ),
        (
            {
                "schema": "qilu.v1.device_health",
                "id": "h",
                "device_kind": "door",
                "device_id": "d",
                "state": "online",
                "ts": "2026-01-01T00:00:00",
            },
            "ts",
        ),
    ],
)
def test_invalid_payloads_name_the_field(payload: dict, message: str) -> None:
    with pytest.raises(StandardError, match=message):
        parse_payload(payload)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_parser_never_fails_other_than_with_standard_error(data: object) -> None:
    # Fuzz: whatever arrives on the bus, the parser answers a record or a StandardError.
    if isinstance(data, dict) and st is not None:
        data = {"schema": "qilu.v1.command", **data}
    try:
        rec = parse_payload(data)  # type: ignore[arg-type]
    except StandardError:
        return
    assert isinstance(rec, Record)


def test_json_schemas_cover_every_kind() -> None:
    schemas = json_schemas()
    assert set(schemas) == {f"qilu.v1.{k}" for k in Record.REGISTRY}
    assert schemas["qilu.v1.access_event"]["properties"]["schema"] == {
        "const": "qilu.v1.access_event"
    }


def test_docs_field_reference_is_current() -> None:
    from pathlib import Path

    from edge.core.standard import markdown_reference

    doc = (Path(__file__).resolve().parents[3] / "docs" / "standard.md").read_text()
    generated = doc.split("do not edit below -->", 1)[1].strip()
    assert generated == markdown_reference().strip(), (
        "run: qilu-edge standard doc --write docs/standard.md"
    )


def test_face_scores_are_described_as_match_scores_on_their_scale() -> None:
    """similarity / fused_score are z-scores once a gallery z-normalises: the reference (and
    the JSON schema) call them match scores and point at score_scale, not "similarity"."""
    from edge.core.standard import markdown_reference

    props = json_schemas()["qilu.v1.access_event"]["properties"]
    for name in ("similarity", "fused_score"):
        assert "match score" in props[name]["description"]
        assert "score_scale" in props[name]["description"]
    assert "z-score" in props["score_scale"]["description"]
    rows = {line.split("|")[1].strip(): line for line in markdown_reference().splitlines()
            if line.startswith("| `")}
    assert "match score" in rows["`similarity`"] and "z 6.3" in rows["`similarity`"]
    assert "meaning" not in markdown_reference().split("qilu.v1.intercom_call")[1].split("###")[0]
