"""The entitlement cache (versions, snapshot merge, ended periods), the quota check and the
Tollgate-Quota-Warning field, without a gateway around them."""

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from tollgate_gateway.quotas.enforcement import check_quotas, refusal
from tollgate_gateway.quotas.headers import quota_warning_field, sf_number
from tollgate_gateway.quotas.states import EntitlementState, EntitlementStates

ORG = uuid.UUID("0b7e5a59-6f3c-4b8e-9a51-3d1f0c2a7e11")
PERIOD_END = 1_796_083_200.0  # 2026-12-01T00:00:00Z
NOW = PERIOD_END - 86_400  # a day before it


def state(
    *, meter: str = "api_requests", version: int = 1, status: str = "exceeded", **changes: Any
) -> EntitlementState:
    raw = {
        "organization_id": str(ORG),
        "meter": meter,
        "limit": 100000,
        "mode": "hard",
        "grace_percent": 10,
        "used": 110000,
        "status": status,
        "period_start": "2026-11-01T00:00:00Z",
        "period_end": "2026-12-01T00:00:00Z",
        "version": version,
    } | changes
    return EntitlementState.parse(raw)


def clock() -> float:
    return NOW


def test_only_a_newer_version_replaces_the_state_held():
    states = EntitlementStates()
    assert states.apply(state(version=7))
    assert not states.apply(state(version=7, status="within"))  # duplicate version
    assert not states.apply(state(version=6, status="within"))  # older
    assert states.flagged_for(ORG) == {"api_requests": state(version=7)}
    assert states.apply(state(version=8, status="within"))
    assert states.flagged_for(ORG) is None  # nothing left to look at for this org
    assert not states.apply(state(version=7))  # a late copy does not come back
    assert states.version_of(ORG, "api_requests") == 8


def test_removed_stops_flagging_and_keeps_its_version():
    states = EntitlementStates()
    states.apply(state(version=3))
    assert states.apply(state(version=4, status="removed", limit=None))
    assert states.flagged_for(ORG) is None
    assert not states.apply(state(version=3))


def test_snapshot_drops_states_it_omits_unless_applied_after_it_was_asked_for():
    states = EntitlementStates()
    states.apply(state(meter="api_requests", version=5))
    states.apply(state(meter="exports", version=2))
    mark = states.mark()
    # An event arriving while the snapshot is on its way may be newer than the snapshot.
    states.apply(state(meter="search_calls", version=9, status="grace", used=100001))
    states.merge_snapshot([state(meter="exports", version=3, used=120000)], mark=mark)
    flagged = states.flagged_for(ORG)
    assert flagged is not None
    assert set(flagged) == {"exports", "search_calls"}
    assert flagged["exports"].used == 120000
    # The omitted state is within now; its old version still marks a late copy as stale.
    assert not states.apply(state(meter="api_requests", version=5))
    assert states.apply(state(meter="api_requests", version=6))


def test_snapshot_item_older_than_an_event_held_is_ignored():
    states = EntitlementStates()
    mark = states.mark()
    states.apply(state(version=9, status="within"))
    states.merge_snapshot([state(version=8)], mark=mark)
    assert states.flagged_for(ORG) is None


def test_ended_periods_are_ignored_then_pruned():
    states = EntitlementStates()
    states.apply(state(version=1))
    assert check_quotas(states, ORG, "api_requests", clock) is not None
    after_end = lambda: PERIOD_END + 1  # noqa: E731
    assert check_quotas(states, ORG, "api_requests", after_end) is None
    assert states.prune(PERIOD_END + 1) == 1
    assert states.flagged_for(ORG) is None and states.version_of(ORG, "api_requests") is None


def test_check_takes_api_requests_and_the_route_meter_only():
    states = EntitlementStates()
    states.apply(state(meter="api_requests", status="grace", used=100500))
    states.apply(state(meter="search_calls", mode="soft"))
    states.apply(state(meter="exports"))  # hard, exceeded, but not this route's meter
    verdict = check_quotas(states, ORG, "search_calls", clock)
    assert verdict is not None
    assert [s.meter for s in verdict.flagged] == ["api_requests", "search_calls"]
    assert verdict.refusing == () and verdict.worst == "exceeded"
    only_requests = check_quotas(states, ORG, "api_requests", clock)
    assert only_requests is not None
    assert [s.meter for s in only_requests.flagged] == ["api_requests"]
    assert only_requests.worst == "grace"
    refused = check_quotas(states, ORG, "exports", clock)
    assert refused is not None and [s.meter for s in refused.refusing] == ["exports"]
    assert check_quotas(states, uuid.uuid4(), "exports", clock) is None


def test_refusal_problem():
    states = EntitlementStates()
    states.apply(state(meter="api_requests", used=110000.5))
    states.apply(state(meter="exports", limit=50, used=60))
    verdict = check_quotas(states, ORG, "exports", clock)
    assert verdict is not None
    problem = refusal(verdict, headers={"X": "y"})
    assert (problem.status, problem.type, problem.title) == (
        429,
        "https://tollgate.dev/problems/quota-exceeded",
        "Quota exceeded",
    )
    assert problem.detail == (
        "The api_requests quota of 100000 for this period is used up (110000.5 used); it resets "
        "at 2026-12-01T00:00:00Z. The exports quota of 50 for this period is used up (60 used); "
        "it resets at 2026-12-01T00:00:00Z."
    )
    assert problem.headers == {"Retry-After": "86400", "X": "y"}
    assert problem.extensions == {
        "violated-policies": ["quota-api_requests", "quota-exports"],
        "quota": {
            "meter": "api_requests",
            "limit": 100000,
            "used": 110000.5,
            "period_end": "2026-12-01T00:00:00Z",
        },
    }


def test_warning_field_members_and_numbers():
    grace = state(status="grace", used=100500, limit=100000)
    soft = state(meter="search_calls", mode="soft", limit=2500.5, used=3000.25)
    assert quota_warning_field([grace, soft], NOW + 0.4) == (
        '"quota-api_requests";status="grace";limit=100000;used=100500;reset=86400, '
        '"quota-search_calls";status="exceeded";limit=2500.5;used=3000.25;reset=86400'
    )


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (0, "0"),
        (100000, "100000"),
        (100000.0, "100000.0"),
        (0.1, "0.1"),
        (1.23456, "1.235"),  # sf-decimal carries three decimals at most
        (2.0005, "2.0"),  # rounded half to even
        (10**20, "999999999999999"),  # beyond sf-integer: its largest value
        (1e13, "999999999999.999"),  # beyond sf-decimal: its largest value
    ],
)
def test_structured_field_numbers(value: int | float, field: str):
    assert sf_number(value) == field


@pytest.mark.parametrize(
    "changes",
    [
        {"used": -1},
        {"used": "5"},
        {"used": True},
        {"limit": None},  # only a removed entitlement has no limit
        {"status": "unknown"},
        {"mode": "strict"},
        {"version": 1.5},
        {"meter": 'bad"meter'},
        {"period_end": "2026-12-01T00:00:00"},  # no time zone
        {"organization_id": "not-a-uuid"},
    ],
)
def test_states_outside_the_contract_are_refused(changes: dict[str, Any]):
    with pytest.raises(ValidationError):
        state(**changes)
