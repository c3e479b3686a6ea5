"""Bad events: each one a clear 422 problem naming what is wrong, and nothing stored."""

import json
import math

import pytest

from tollgate_metering.ingestion.schemas import MAX_DATA_BYTES

from .conftest import assert_problem, create_meter, database_state, event

MISSING = object()


def changed(**fields):
    """A valid llm_tokens event with these fields replaced (MISSING removes one)."""
    body = event(**{name: value for name, value in fields.items() if value is not MISSING})
    return {name: value for name, value in body.items() if fields.get(name) is not MISSING}


def nested(depth):
    """Lists inside lists, depth levels."""
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


def with_tokens(value):
    return changed(data={"tokens": value})


CASES = [
    ("id missing", changed(id=MISSING), ["id"], "missing"),
    ("id a number", changed(id=42), ["id"], "string_type"),
    ("id empty", changed(id=""), ["id"], "string_pattern_mismatch"),
    ("id with a space", changed(id="a b"), ["id"], "string_pattern_mismatch"),
    ("id too long", changed(id="x" * 129), ["id"], "string_pattern_mismatch"),
    ("id not ascii", changed(id="événement"), ["id"], "string_pattern_mismatch"),
    ("type missing", changed(type=MISSING), ["type"], "missing"),
    ("type a list", changed(type=["llm_tokens"]), ["type"], "string_type"),
    ("type not a key", changed(type="LLM tokens"), ["type"], "string_pattern_mismatch"),
    ("subject missing", changed(subject=MISSING), ["subject"], "missing"),
    ("subject a number", changed(subject=7), ["subject"], "string_type"),
    ("subject empty", changed(subject=""), ["subject"], "string_too_short"),
    ("subject too long", changed(subject="c" * 257), ["subject"], "string_too_long"),
    ("subject with NUL", changed(subject="a\x00b"), ["subject"], "string_pattern_mismatch"),
    ("time a number", changed(time=1700000000), ["time"], "rfc3339"),
    ("time without offset", changed(time="2026-11-20T10:00:00"), ["time"], "timezone_aware"),
    ("time not a time", changed(time="yesterday"), ["time"], "datetime_from_date_parsing"),
    ("data a list", changed(data=[1, 2]), ["data"], "dict_type"),
    ("data a string", changed(data="tokens=5"), ["data"], "dict_type"),
    ("unknown field", changed(subjekt="typo"), ["subjekt"], "extra_forbidden"),
    ("other specversion", changed(specversion="0.3"), ["specversion"], "literal_error"),
    ("value missing", changed(data={"model": "small"}), ["data", "tokens"], "missing"),
    ("value a string", with_tokens("12"), ["data", "tokens"], "number_type"),
    ("value a boolean", with_tokens(True), ["data", "tokens"], "number_type"),
    ("value null", with_tokens(None), ["data", "tokens"], "number_type"),
    ("value an object", with_tokens({"n": 1}), ["data", "tokens"], "number_type"),
    ("value negative", with_tokens(-1), ["data", "tokens"], "greater_than_equal"),
    ("value tiny negative", with_tokens(-1e-9), ["data", "tokens"], "greater_than_equal"),
    ("value above 1e15", with_tokens(1e15 + 1), ["data", "tokens"], "less_than_equal"),
    ("value huge integer", with_tokens(10**30), ["data", "tokens"], "less_than_equal"),
    ("value NaN", with_tokens(math.nan), ["data"], "finite_number"),
    ("value Infinity", with_tokens(math.inf), ["data"], "finite_number"),
    ("value -Infinity", with_tokens(-math.inf), ["data"], "finite_number"),
    (
        "NaN elsewhere in data",
        changed(data={"tokens": 1, "x": [math.nan]}),
        ["data"],
        "finite_number",
    ),
    ("NUL in data", changed(data={"tokens": 1, "note": "a\x00"}), ["data"], "nul_character"),
    ("NUL in a data key", changed(data={"tokens": 1, "\x00": 1}), ["data"], "nul_character"),
    (
        "data too large",
        changed(data={"tokens": 1, "blob": "x" * MAX_DATA_BYTES}),
        ["data"],
        "data_too_large",
    ),
    ("data too deep", changed(data={"tokens": 1, "x": nested(32)}), ["data"], "data_too_deep"),
    ("unknown meter", changed(type="no_such_meter"), ["type"], "unknown_meter"),
]


@pytest.fixture
async def meters(client, acme):
    await create_meter(client, acme, key="llm_tokens", value_property="tokens")


@pytest.mark.parametrize(
    ("body", "loc", "error_type"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
async def test_a_bad_event_is_refused_with_its_error(
    client, acme, db, meters, body, loc, error_type
):
    before = await database_state(db)
    # json.dumps writes NaN and Infinity as bare words, as a careless client's encoder would.
    response = await client.post(
        "/v1/events",
        content=json.dumps(body),
        headers={**acme.key("write"), "content-type": "application/json"},
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["loc"] == ["body", *loc], problem
    assert problem["errors"][0]["type"] == error_type, problem
    assert problem["rejected"][0]["index"] == 0
    assert problem["rejected"][0]["errors"][0]["loc"] == loc
    assert await database_state(db) == before


async def test_a_batch_with_no_valid_event_is_a_422_listing_each(client, acme, db, meters):
    before = await database_state(db)
    batch = [changed(id=""), changed(data={"tokens": -1}), 5]
    response = await client.post("/v1/events", json=batch, headers=acme.key("write"))
    problem = assert_problem(response, 422, "validation-error")
    assert [error["loc"][:2] for error in problem["errors"]] == [
        ["body", "0"],
        ["body", "1"],
        ["body", "2"],
    ]
    assert [item["index"] for item in problem["rejected"]] == [0, 1, 2]
    assert problem["rejected"][1]["id"] == batch[1]["id"]
    assert await database_state(db) == before


async def test_an_archived_meter_takes_no_new_events(client, acme, db, meters):
    await client.delete("/v1/meters/llm_tokens", headers=acme.admin)
    before = await database_state(db)
    response = await client.post("/v1/events", json=event(), headers=acme.key("write"))
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["type"] == "meter_archived"
    assert await database_state(db) == before


async def test_another_orgs_meter_key_is_unknown_here(client, acme, globex, db, meters):
    before = await database_state(db)
    response = await client.post("/v1/events", json=event(), headers=globex.key("write"))
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["type"] == "unknown_meter"
    assert await database_state(db) == before


@pytest.mark.parametrize("count", [0, 1001])
async def test_a_batch_holds_1_to_1000_events(client, acme, db, meters, count):
    before = await database_state(db)
    batch = [event() for _ in range(count)]
    response = await client.post("/v1/events", json=batch, headers=acme.key("write"))
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"] == [
        {
            "loc": ["body"],
            "message": f"must hold 1 to 1000 events, not {count}",
            "type": "batch_size",
        }
    ]
    assert await database_state(db) == before


async def test_1000_events_are_accepted(client, acme, db, meters):
    response = await client.post(
        "/v1/events", json=[event() for _ in range(1000)], headers=acme.key("write")
    )
    assert response.json()["inserted"] == 1000, response.text


@pytest.mark.parametrize(
    ("content", "error_type"),
    [
        (b'{"id": "x", ', "json_invalid"),
        (b"", "json_invalid"),
        (b"\xff\xfe", "json_invalid"),
        (b"42", "type"),
        (b'"an event"', "type"),
        (b"null", "type"),
        (b"[" * 100_000 + b"]" * 100_000, "json_too_deep"),
    ],
)
async def test_a_body_that_is_no_event_or_list(client, acme, db, meters, content, error_type):
    before = await database_state(db)
    response = await client.post(
        "/v1/events",
        content=content,
        headers={**acme.key("write"), "content-type": "application/json"},
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["type"] == error_type
    assert problem["errors"][0]["loc"] == ["body"]
    assert await database_state(db) == before


async def test_unauthorized_callers_store_nothing(client, acme, mint_identity, db, meters):
    before = await database_state(db)
    assert_problem(await client.post("/v1/events", json=event()), 401, "unauthorized")
    service = mint_identity("service", principal_id="gateway")
    assert_problem(await client.post("/v1/events", json=event(), headers=service), 401)
    assert await database_state(db) == before
