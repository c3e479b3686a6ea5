"""Bad input on every endpoint: a clear 4xx problem with a request id, and nothing changed."""

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from .conftest import STRONG_PASSWORD, assert_problem, database_state

GOOD_SIGNUP = {
    "organization_name": "Bad Input Inc",
    "email": "jonathan@example.com",
    "password": STRONG_PASSWORD,
}
VALIDATION, WEAK, BAD_REQUEST = "validation-error", "weak-password", "bad-request"


def cursor_of(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Case:
    id: str
    method: str
    path: str
    json: Any = None
    content: bytes | None = None  # a raw body, sent as content_type
    content_type: str = "application/json"
    params: dict[str, Any] = field(default_factory=dict)
    status: int = 422
    slug: str = VALIDATION
    caller: str = "admin"  # admin | anonymous | gateway
    error_at: list[str] | None = None  # where the first validation error points


def signup(**changes: Any) -> dict[str, Any]:
    body = {**GOOD_SIGNUP, **changes}
    return {name: value for name, value in body.items() if value is not ...}


CASES = [
    # signup
    Case("signup empty body", "POST", "/v1/signup", json={}, caller="anonymous"),
    Case(
        "signup missing password",
        "POST",
        "/v1/signup",
        json=signup(password=...),
        caller="anonymous",
        error_at=["body", "password"],
    ),
    Case(
        "signup name not a string",
        "POST",
        "/v1/signup",
        json=signup(organization_name=123),
        caller="anonymous",
        error_at=["body", "organization_name"],
    ),
    Case(
        "signup email a list",
        "POST",
        "/v1/signup",
        json=signup(email=["jonathan@example.com"]),
        caller="anonymous",
    ),
    Case(
        "signup password a number",
        "POST",
        "/v1/signup",
        json=signup(password=12345678901234),
        caller="anonymous",
    ),
    Case(
        "signup extra field",
        "POST",
        "/v1/signup",
        json=signup(plan="enterprise"),
        caller="anonymous",
        error_at=["body", "plan"],
    ),
    Case(
        "signup huge name",
        "POST",
        "/v1/signup",
        json=signup(organization_name="x" * 100_000),
        caller="anonymous",
    ),
    Case(
        "signup name with a newline",
        "POST",
        "/v1/signup",
        json=signup(organization_name="Acme\nInc"),
        caller="anonymous",
    ),
    Case(
        "signup blank name",
        "POST",
        "/v1/signup",
        json=signup(organization_name="   "),
        caller="anonymous",
    ),
    Case(
        "signup full name with NUL",
        "POST",
        "/v1/signup",
        json=signup(full_name="Jo\x00n"),
        caller="anonymous",
        error_at=["body", "full_name"],
    ),
    Case(
        "signup full name with a lone surrogate",
        "POST",
        "/v1/signup",
        content=b'{"organization_name": "Surrogate", "email": "s@example.com", '
        b'"password": "correct horse battery staple", "full_name": "\\ud800"}',
        caller="anonymous",
    ),
    Case(
        "signup huge full name",
        "POST",
        "/v1/signup",
        json=signup(full_name="y" * 5000),
        caller="anonymous",
    ),
    *[
        Case(
            f"signup bad email {email!r}",
            "POST",
            "/v1/signup",
            json=signup(email=email),
            caller="anonymous",
            error_at=["body", "email"],
        )
        for email in (
            "not-an-email",
            "jonathan@",
            "@example.com",
            "jon athan@example.com",
            "x" * 400 + "@example.com",
            "",
        )
    ],
    *[
        Case(
            f"signup weak password {name}",
            "POST",
            "/v1/signup",
            json=signup(password=password),
            caller="anonymous",
            slug=WEAK,
            error_at=["body", "password"],
        )
        for name, password in (
            ("too short", "Sh0rt!"),
            ("too few characters", "abababababab"),
            ("contains the email name", "Jonathan-2026-rocks"),
            ("too long", "Long password! " * 10),
            ("surrounded by spaces", f" {STRONG_PASSWORD} "),
        )
    ],
    Case(
        "signup password beyond any limit",
        "POST",
        "/v1/signup",
        json=signup(password="p" * 100_000),
        caller="anonymous",
    ),
    Case(
        "signup body not JSON",
        "POST",
        "/v1/signup",
        content=b"{organization_name: oops",
        caller="anonymous",
    ),
    Case("signup body a list", "POST", "/v1/signup", json=[GOOD_SIGNUP], caller="anonymous"),
    Case(
        "signup form encoded",
        "POST",
        "/v1/signup",
        content=b"organization_name=x&email=a%40example.com",
        content_type="application/x-www-form-urlencoded",
        caller="anonymous",
    ),
    # login, refresh, logout
    Case("login empty body", "POST", "/v1/auth/login", json={}, caller="anonymous"),
    Case(
        "login bad email",
        "POST",
        "/v1/auth/login",
        json={"email": "nope", "password": STRONG_PASSWORD},
        caller="anonymous",
    ),
    Case(
        "login empty password",
        "POST",
        "/v1/auth/login",
        json={"email": "a@example.com", "password": ""},
        caller="anonymous",
    ),
    Case(
        "login organization not a uuid",
        "POST",
        "/v1/auth/login",
        json={"email": "a@example.com", "password": "x" * 12, "organization_id": "acme"},
        caller="anonymous",
        error_at=["body", "organization_id"],
    ),
    Case(
        "login extra field",
        "POST",
        "/v1/auth/login",
        json={"email": "a@example.com", "password": "x" * 12, "remember": True},
        caller="anonymous",
    ),
    Case(
        "login password with a lone surrogate",
        "POST",
        "/v1/auth/login",
        content=b'{"email": "a@example.com", "password": "\\udc80 long enough"}',
        caller="anonymous",
    ),
    Case(
        "refresh token too short",
        "POST",
        "/v1/auth/refresh",
        json={"refresh_token": "tgr_"},
        caller="anonymous",
    ),
    Case(
        "refresh token too long",
        "POST",
        "/v1/auth/refresh",
        json={"refresh_token": "tgr_" + "x" * 5000},
        caller="anonymous",
    ),
    Case(
        "logout token a number",
        "POST",
        "/v1/auth/logout",
        json={"refresh_token": 1234567890123},
        caller="anonymous",
    ),
    # creating keys
    Case("key without name", "POST", "/v1/keys", json={}, error_at=["body", "name"]),
    Case("key blank name", "POST", "/v1/keys", json={"name": "   "}),
    Case("key name too long", "POST", "/v1/keys", json={"name": "k" * 101}),
    Case("key huge name", "POST", "/v1/keys", json={"name": "k" * 1_000_000}),
    Case("key name with a tab", "POST", "/v1/keys", json={"name": "a\tb"}),
    Case(
        "key name with a lone surrogate",
        "POST",
        "/v1/keys",
        content=b'{"name": "bad \\udc80 name"}',
    ),
    Case(
        "key unknown scope",
        "POST",
        "/v1/keys",
        json={"name": "k", "scopes": ["read", "superuser"]},
        error_at=["body", "scopes", "1"],
    ),
    Case("key no scopes", "POST", "/v1/keys", json={"name": "k", "scopes": []}),
    Case("key scopes a string", "POST", "/v1/keys", json={"name": "k", "scopes": "read"}),
    Case("key scopes numbers", "POST", "/v1/keys", json={"name": "k", "scopes": [1]}),
    Case("key unknown environment", "POST", "/v1/keys", json={"name": "k", "environment": "prod"}),
    Case(
        "key expiry in the past",
        "POST",
        "/v1/keys",
        json={"name": "k", "expires_at": "2020-01-01T00:00:00Z"},
        error_at=["body", "expires_at"],
    ),
    Case(
        "key expiry without time zone",
        "POST",
        "/v1/keys",
        json={"name": "k", "expires_at": "2099-01-01T00:00:00"},
    ),
    Case("key expiry not a time", "POST", "/v1/keys", json={"name": "k", "expires_at": "soon"}),
    Case("key empty rate limit", "POST", "/v1/keys", json={"name": "k", "rate_limit": {}}),
    Case(
        "key zero rate limit",
        "POST",
        "/v1/keys",
        json={"name": "k", "rate_limit": {"per_minute": 0}},
    ),
    Case(
        "key rate limit not a number",
        "POST",
        "/v1/keys",
        json={"name": "k", "rate_limit": {"per_minute": "lots"}},
    ),
    Case(
        "key rate limit unknown window",
        "POST",
        "/v1/keys",
        json={"name": "k", "rate_limit": {"per_week": 5}},
    ),
    Case(
        "key rate limit beyond 64 bits",
        "POST",
        "/v1/keys",
        json={"name": "k", "rate_limit": {"per_second": 10**30}},
    ),
    Case(
        "key for another org (extra field)",
        "POST",
        "/v1/keys",
        json={"name": "k", "org_id": "00000000-0000-0000-0000-000000000000"},
    ),
    Case(
        "key with a chosen secret (extra field)",
        "POST",
        "/v1/keys",
        json={"name": "k", "key": "tg_live_" + "a" * 38},
    ),
    # changing, rotating keys
    Case("patch nothing", "PATCH", "/v1/keys/{key_id}", json={}),
    Case("patch name null", "PATCH", "/v1/keys/{key_id}", json={"name": None}),
    Case("patch scopes null", "PATCH", "/v1/keys/{key_id}", json={"scopes": None}),
    Case("patch unknown scope", "PATCH", "/v1/keys/{key_id}", json={"scopes": ["root"]}),
    Case(
        "patch expiry in the past",
        "PATCH",
        "/v1/keys/{key_id}",
        json={"expires_at": "2001-01-01T00:00:00+00:00"},
    ),
    Case("patch revoked_at (extra)", "PATCH", "/v1/keys/{key_id}", json={"revoked_at": None}),
    Case("patch empty rate limit", "PATCH", "/v1/keys/{key_id}", json={"rate_limit": {}}),
    Case("patch body a string", "PATCH", "/v1/keys/{key_id}", json="name"),
    Case("rotate negative grace", "POST", "/v1/keys/{key_id}/rotate", json={"grace_seconds": -1}),
    Case(
        "rotate grace over 30 days",
        "POST",
        "/v1/keys/{key_id}/rotate",
        json={"grace_seconds": 30 * 86400 + 1},
    ),
    Case(
        "rotate grace not a number",
        "POST",
        "/v1/keys/{key_id}/rotate",
        json={"grace_seconds": "an hour"},
    ),
    Case("rotate extra field", "POST", "/v1/keys/{key_id}/rotate", json={"secret": "mine"}),
    # listing
    Case("list limit zero", "GET", "/v1/keys", params={"limit": 0}),
    Case("list limit too big", "GET", "/v1/keys", params={"limit": 101}),
    Case("list limit not a number", "GET", "/v1/keys", params={"limit": "all"}),
    Case("list cursor too long", "GET", "/v1/keys", params={"cursor": "a" * 201}),
    *[
        Case(
            f"list malformed cursor {name}",
            "GET",
            "/v1/keys",
            params={"cursor": cursor},
            status=400,
            slug=BAD_REQUEST,
        )
        for name, cursor in (
            ("garbage", "!!!"),
            ("not json", cursor_of(b"not json")),
            ("not utf-8", cursor_of(b"\xff\xfe\xfd")),
            ("a list", cursor_of([1, 2])),
            ("missing id", cursor_of({"t": "2026-01-01T00:00:00+00:00"})),
            (
                "bad time",
                cursor_of({"t": "yesterday", "i": "00000000-0000-0000-0000-000000000000"}),
            ),
            ("bad id", cursor_of({"t": "2026-01-01T00:00:00+00:00", "i": "me"})),
            ("time a number", cursor_of({"t": 5, "i": "00000000-0000-0000-0000-000000000000"})),
            ("id a number", cursor_of({"t": "2026-01-01T00:00:00+00:00", "i": 5})),
            ("not ascii", "é€"),
        )
    ],
    # ids in paths
    Case("get key bad uuid", "GET", "/v1/keys/not-a-uuid", error_at=["path", "key_id"]),
    Case("patch key bad uuid", "PATCH", "/v1/keys/123", json={"name": "x"}),
    Case("revoke key bad uuid", "DELETE", "/v1/keys/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"),
    Case("rotate key bad uuid", "POST", "/v1/keys/%20/rotate"),
    Case("change role bad uuid", "PATCH", "/v1/members/admin", json={"role": "member"}),
    Case("remove member bad uuid", "DELETE", "/v1/members/1"),
    # members
    Case("invite member bad email", "POST", "/v1/members", json={"email": "bad"}),
    Case(
        "invite member unknown role",
        "POST",
        "/v1/members",
        json={"email": "a@example.com", "role": "owner"},
    ),
    Case(
        "invite member as super admin",
        "POST",
        "/v1/members",
        json={"email": "a@example.com", "role": "super_admin"},
        error_at=["body", "role"],
    ),
    Case(
        "invite member extra field",
        "POST",
        "/v1/members",
        json={"email": "a@example.com", "password": "x"},
    ),
    Case("change role empty", "PATCH", "/v1/members/{user_id}", json={}),
    Case("change role null", "PATCH", "/v1/members/{user_id}", json={"role": None}),
    Case(
        "change role to super admin", "PATCH", "/v1/members/{user_id}", json={"role": "super_admin"}
    ),
    Case(
        "accept short token",
        "POST",
        "/v1/invitations/accept",
        json={"token": "tgi_", "password": STRONG_PASSWORD},
        caller="anonymous",
    ),
    Case(
        "accept without password",
        "POST",
        "/v1/invitations/accept",
        json={"token": "tgi_" + "a" * 40},
        caller="anonymous",
    ),
    Case(
        "accept full name with NUL",
        "POST",
        "/v1/invitations/accept",
        json={"token": "tgi_" + "a" * 40, "password": STRONG_PASSWORD, "full_name": "\x00"},
        caller="anonymous",
    ),
    # organisation
    Case("rename empty", "PATCH", "/v1/organization", json={"name": ""}),
    Case("rename huge", "PATCH", "/v1/organization", json={"name": "o" * 10_000}),
    Case(
        "rename and upgrade plan (extra)",
        "PATCH",
        "/v1/organization",
        json={"name": "Acme", "plan": "enterprise"},
    ),
    # routes
    Case("unknown route", "GET", "/v1/nothing-here", status=404, slug="not-found"),
    Case(
        "wrong method", "PUT", "/v1/keys", json={"name": "x"}, status=405, slug="method-not-allowed"
    ),
]


@pytest.fixture
def callers(acme, anonymous, gateway):
    return {"admin": acme.admin, "anonymous": anonymous, "gateway": gateway}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_bad_input_is_a_clear_4xx_and_changes_nothing(client, acme, callers, db, case):
    path = case.path.format(key_id=acme.first_key_id, user_id=acme.admin_id)
    kwargs: dict[str, Any] = {"params": case.params, "headers": dict(callers[case.caller])}
    if case.content is not None:
        kwargs["content"] = case.content
        kwargs["headers"]["content-type"] = case.content_type
    elif case.json is not None:
        kwargs["json"] = case.json
    before = await database_state(db)

    response = await client.request(case.method, path, **kwargs)

    body = assert_problem(response, case.status, case.slug)
    if case.error_at is not None:
        assert body["errors"][0]["loc"] == case.error_at, body["errors"]
    assert await database_state(db) == before


async def test_the_request_id_from_the_gateway_is_kept_in_problems(client, acme):
    response = await client.get(
        "/v1/keys/not-a-uuid", headers={**acme.admin, "X-Request-Id": "gw-1234.abc"}
    )
    assert assert_problem(response, 422)["request_id"] == "gw-1234.abc"


async def test_a_made_up_request_id_is_replaced(client, acme):
    response = await client.get(
        "/v1/keys/not-a-uuid", headers={**acme.admin, "X-Request-Id": "<script>"}
    )
    body = assert_problem(response, 422)
    assert body["request_id"] != "<script>"
    assert len(body["request_id"]) == 32
