"""GET /v1/events: the organisation's events, newest first, filtered, page by page."""

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from .conftest import assert_problem, create_meter, event

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def at(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
async def history(client, acme, globex):
    """Acme: 12 llm_tokens events (two subjects, one a minute) and 3 traces events; two
    pairs share a time so the id breaks the tie. Globex: events with the same ids."""
    await create_meter(client, acme)
    await create_meter(client, acme, key="traces", aggregation="COUNT")
    await create_meter(client, globex)
    tokens = [
        event(f"t{minute:02d}", subject=f"customer-{minute % 2}", time=at(minute))
        for minute in range(10)
    ]
    tokens += [event("t05b", time=at(5)), event("t07b", time=at(7), subject="customer-1")]
    requests = [event(f"r{minute}", type="traces", time=at(minute)) for minute in (1, 4, 8)]
    for org, batch in ((acme, tokens + requests), (globex, tokens)):
        response = await client.post("/v1/events", json=batch, headers=org.key("write"))
        assert response.json()["inserted"] == len(batch), response.text
    return tokens + requests


async def all_pages(client, org, query="", limit=4):
    ids, cursor, pages = [], None, 0
    while True:
        url = f"/v1/events?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=org.key("read"))
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages


def newest_first(events):
    return [
        item["id"]
        for item in sorted(events, key=lambda item: (item["time"], item["id"]), reverse=True)
    ]


async def test_pages_walk_every_event_once_newest_first(client, acme, history):
    ids, pages = await all_pages(client, acme)
    assert ids == newest_first(history)
    assert pages == 4  # 15 events, 4 a page
    assert ids.index("t07b") < ids.index("t07")  # same time: the larger id first


async def test_one_page_shows_the_stored_event(client, acme, history):
    response = await client.get("/v1/events?limit=1", headers=acme.user("member"))
    [item] = response.json()["items"]
    assert item["id"] == "t09"
    assert item["type"] == "llm_tokens"
    assert item["subject"] == "customer-1"
    assert datetime.fromisoformat(item["time"]) == BASE + timedelta(minutes=9)
    assert item["data"] == {"tokens": 120, "model": "small"}
    assert item["source"] == "api"
    assert item["received_at"]


async def test_filters_by_type_subject_and_time(client, acme, history):
    by_type, _ = await all_pages(client, acme, "&type=traces")
    assert by_type == ["r8", "r4", "r1"]

    by_subject, _ = await all_pages(client, acme, "&type=llm_tokens&subject=customer-1")
    assert by_subject == ["t09", "t07b", "t07", "t05b", "t05", "t03", "t01"]

    window = f"&from={quote(at(4))}&to={quote(at(7))}"
    in_window, _ = await all_pages(client, acme, window)
    assert in_window == ["t06", "t05b", "t05", "t04", "r4"]  # from inclusive, to exclusive

    nothing, _ = await all_pages(client, acme, "&subject=customer-9")
    assert nothing == []


async def test_another_orgs_events_stay_invisible(client, acme, globex, history, mint_identity):
    acme_ids, _ = await all_pages(client, acme, limit=100)
    globex_ids, _ = await all_pages(client, globex, limit=100)
    assert len(acme_ids) == 15
    assert sorted(globex_ids) == sorted(item["id"] for item in history if item["id"][0] == "t")
    # Another organisation's cursor reveals nothing either: it only marks a position.
    first = (await client.get("/v1/events?limit=2", headers=acme.key("read"))).json()
    theirs = await client.get(
        f"/v1/events?limit=100&cursor={first['next_cursor']}", headers=globex.key("read")
    )
    assert all(item["id"] in globex_ids for item in theirs.json()["items"])


@pytest.mark.parametrize(
    ("query", "status", "where"),
    [
        ("cursor=not-a-cursor", 400, None),
        ("cursor=" + base64.urlsafe_b64encode(b'{"t": "x"}').decode(), 400, None),
        ("limit=0", 422, ["query", "limit"]),
        ("limit=101", 422, ["query", "limit"]),
        ("type=Not%20A%20Key", 422, ["query", "type"]),
        ("subject=a%00b", 422, ["query", "subject"]),
        ("from=yesterday", 422, ["query", "from"]),
        ("from=2026-11-20T10:00:00", 422, ["query", "from"]),
        ("from=2026-11-20T10:00:00Z&to=2026-11-20T09:00:00Z", 422, ["query", "to"]),
    ],
)
async def test_bad_queries_are_clear_problems(client, acme, history, query, status, where):
    response = await client.get(f"/v1/events?{query}", headers=acme.key("read"))
    problem = assert_problem(response, status)
    if where is not None:
        assert problem["errors"][0]["loc"] == where


async def test_reading_needs_the_read_scope_or_membership(client, acme, history):
    assert_problem(await client.get("/v1/events", headers=acme.key("write")), 403, "forbidden")
    assert_problem(await client.get("/v1/events"), 401, "unauthorized")
    assert (await client.get("/v1/events", headers=acme.key("admin"))).status_code == 200
