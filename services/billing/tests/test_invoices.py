"""Invoices from subscription periods and metering's usage: the close job, the API, reconciling."""

import asyncio
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from pypdf import PdfReader

from tollgate_billing.catalog.schemas import MeteredCharge, PlanCreate
from tollgate_billing.catalog.service import create_plan
from tollgate_billing.invoices.closer import close_periods
from tollgate_billing.invoices.metering_usage import MeteringUsageClient
from tollgate_billing.pricing.schemes import PerUnit
from tollgate_billing.subscriptions.roller import roll_due_subscriptions
from tollgate_shared.identity import generate_keypair

from .conftest import assert_problem
from .subscription_helpers import new_subscription

START = datetime(2026, 3, 14, 10, 47, 42, tzinfo=UTC)  # not on a whole minute, on purpose
END = datetime(2026, 4, 14, 10, 47, 42, tzinfo=UTC)
GRACE = timedelta(hours=1)
REQUEST = {"meter": "api_requests"}


async def metered_plan(db, key: str = "metered", name: str = "Metered") -> str:
    """$10 a month, 2 requests included, then $0.005 each (sub-cent, exact)."""
    async with db() as session, session.begin():
        await create_plan(
            session,
            data=PlanCreate(
                key=key,
                name=name,
                monthly_price=Decimal("10.00"),
                metered_charges={
                    "api_requests": MeteredCharge(
                        included_quantity=Decimal(2), pricing=PerUnit(unit_price=Decimal("0.005"))
                    )
                },
            ),
        )
    return key


async def close(db, billing_app, now: datetime) -> list[uuid.UUID]:
    return await close_periods(db, metering=billing_app.state.metering_usage, grace=GRACE, now=now)


async def ended_period(db, acme, plan: str) -> None:
    await new_subscription(db, org_id=acme.org_id, plan=plan, now=START, trial_used=True)
    await roll_due_subscriptions(db, default_plan="free", now=END + timedelta(seconds=1))


async def test_a_period_is_invoiced_once_with_metering_quantities_line_by_line(
    client, db, billing_app, metering, acme, globex, operator
):
    await ended_period(db, acme, await metered_plan(db))
    await metering.store(
        acme.org_id,
        *[("api_requests", "k", START + timedelta(seconds=18 + n), REQUEST) for n in range(7)],
        ("api_requests", "k", START - timedelta(seconds=43), REQUEST),  # the minute before
        ("api_requests", "k", END + timedelta(seconds=18), REQUEST),  # the next period
        ("api_requests", "k", START + timedelta(days=3), {"route": "usage"}),  # Tollgate's own
    )
    # Within the grace window nothing is closed; after it, one invoice; then nothing again.
    assert await close(db, billing_app, END + GRACE - timedelta(seconds=1)) == []
    [invoice_id] = await close(db, billing_app, END + GRACE)
    assert await close(db, billing_app, END + GRACE * 2) == []

    response = await client.get(f"/v1/billing/invoices/{invoice_id}", headers=acme.user())
    assert response.status_code == 200, response.text
    invoice = response.json()
    assert re.fullmatch(r"INV-\d{6}", invoice["number"])
    assert invoice["state"] == "open"
    assert (invoice["currency"], invoice["plan"], invoice["interval"]) == (
        "USD",
        "metered",
        "month",
    )
    assert invoice["period_start"].startswith("2026-03-14T10:47:42")
    assert invoice["period_end"].startswith("2026-04-14T10:47:42")
    assert invoice["usage_from"].startswith("2026-03-14T10:47:00")
    assert invoice["usage_to"].startswith("2026-04-14T10:47:00")
    lines = [(line["kind"], line["quantity"], line["amount"]) for line in invoice["lines"]]
    # 7 requests in the period, 2 included: 5 x $0.005 = $0.025 → 2 cents (half to even).
    assert lines == [("base_fee", None, 1000), ("metered", "7", 2)]
    metered = invoice["lines"][1]
    assert (metered["included"], metered["billable"], metered["unit_price"]) == (
        "2",
        "5",
        "0.005",
    )
    assert invoice["total"] == invoice["subtotal"] == 1002

    listed = await client.get("/v1/billing/invoices", headers=acme.key("read"))
    assert [item["id"] for item in listed.json()["items"]] == [str(invoice_id)]
    assert (await client.get("/v1/billing/invoices", headers=globex.user())).json()["items"] == []
    assert_problem(
        await client.get(f"/v1/billing/invoices/{invoice_id}", headers=globex.user()), 404
    )

    # Metering's figure equals the invoice's, line by line; a late event shows as a mismatch.
    params = {"organization_id": str(acme.org_id), "period_start": START.isoformat()}
    reconciliation = await client.get(
        "/v1/billing/admin/reconciliation", params=params, headers=operator
    )
    assert reconciliation.status_code == 200, reconciliation.text
    assert reconciliation.json()["matches"] is True
    assert [
        (line["meter"], line["invoiced_quantity"], line["metered_quantity"])
        for line in reconciliation.json()["lines"]
    ] == [("api_requests", "7", "7")]
    await metering.store(acme.org_id, ("api_requests", "k", START + timedelta(days=9), REQUEST))
    late = await client.get("/v1/billing/admin/reconciliation", params=params, headers=operator)
    assert late.json()["matches"] is False
    assert late.json()["lines"][0]["metered_quantity"] == "8"

    # The next period so far: the event after the edge, priced the same way, not stored.
    upcoming = await client.get("/v1/billing/invoices/upcoming", headers=acme.user())
    assert upcoming.status_code == 200, upcoming.text
    assert upcoming.json()["period_start"].startswith("2026-04-14T10:47:42")
    assert [(line["kind"], line["quantity"]) for line in upcoming.json()["lines"]] == [
        ("base_fee", None),
        ("metered", "1"),
    ]
    assert upcoming.json()["usage"] == {"api_requests": "1"}
    async with db() as session:
        issued = await session.scalar(
            sa.text(
                "SELECT count(*) FROM billing.invoices WHERE org_id = :org AND number IS NOT NULL"
            ),
            {"org": acme.org_id},
        )
        events = (
            await session.execute(
                sa.text(
                    "SELECT subject, payload->'data' FROM billing.outbox"
                    " WHERE payload->>'orgid' = :org AND subject LIKE 'tollgate.billing.invoice.%'"
                ),
                {"org": str(acme.org_id)},
            )
        ).all()
    assert issued == 1
    assert [(subject, data["number"], data["total"]) for subject, data in events] == [
        ("tollgate.billing.invoice.finalized", invoice["number"], 1002)
    ]


async def test_a_zero_invoice_is_still_issued_and_paid_at_once(
    client, db, billing_app, metering, acme
):
    await ended_period(db, acme, "free")
    [invoice_id] = await close(db, billing_app, END + GRACE)
    invoice = (await client.get(f"/v1/billing/invoices/{invoice_id}", headers=acme.user())).json()
    assert invoice["total"] == 0
    # Nothing to collect: paid when finalized, without a payment attempt (ADR 0020).
    assert (invoice["state"], invoice["paid_at"]) == ("paid", invoice["finalized_at"])
    async with db() as session:
        tried = await session.scalar(
            sa.text("SELECT count(*) FROM billing.payment_attempts WHERE invoice_id = :id"),
            {"id": invoice_id},
        )
    assert tried == 0
    assert [(line["kind"], line["amount"]) for line in invoice["lines"]] == [("base_fee", 0)]


async def test_a_change_now_bills_its_prorations_on_the_period_it_ended(
    client, db, billing_app, metering, acme, operator
):
    """Pro → metered on day 10: the old period's base fee, the credit for its unused part; the
    new plan's charge for the rest; usage split where the change happened."""
    from tollgate_billing.subscriptions.models import Interval
    from tollgate_billing.subscriptions.schemas import Moment
    from tollgate_billing.subscriptions.service import change_plan

    from .subscription_helpers import load

    plan = await metered_plan(db)
    await new_subscription(db, org_id=acme.org_id, plan="pro", now=START, trial_used=True)
    changed_at = START + timedelta(days=10)
    async with db() as session, session.begin():
        subscription = await load(session, acme.org_id)
        await change_plan(
            session,
            subscription=subscription,
            plan_key=plan,
            interval=Interval.MONTH,
            at=Moment.NOW,
            now=changed_at,
            default_plan="free",
        )
    await roll_due_subscriptions(db, default_plan="free", now=END + timedelta(seconds=1))
    [invoice_id] = await close(db, billing_app, END + GRACE)
    invoice = (await client.get(f"/v1/billing/invoices/{invoice_id}", headers=acme.user())).json()
    # The same period (same interval): Pro's fee, its unused 21 of 31 days back, the metered
    # plan's 21 days; usage priced at the plan the period started on (Pro, 1M included).
    kinds = [(line["kind"], line["amount"]) for line in invoice["lines"]]
    assert kinds[0] == ("base_fee", 9900)
    assert [kind for kind, _ in kinds] == ["base_fee", "proration", "proration", "metered"]
    # 9900 x 21/31 = 6706.45 back, 1000 x 21/31 = 677.42 charged (half to even).
    assert sorted(amount for kind, amount in kinds if kind == "proration") == [-6706, 677]
    assert invoice["total"] == sum(amount for _, amount in kinds)
    async with db() as session:
        left = await session.scalar(
            sa.text(
                "SELECT count(*) FROM billing.pending_invoice_items AS i JOIN billing.customers"
                " AS c ON c.id = i.customer_id WHERE c.org_id = :org AND i.invoice_id IS NULL"
            ),
            {"org": acme.org_id},
        )
    assert left == 0  # both items are on the invoice, marked


async def test_voiding_keeps_the_number_and_refuses_a_later_payment(
    client, db, billing_app, metering, acme, operator
):
    await ended_period(db, acme, "pro")
    [invoice_id] = await close(db, billing_app, END + GRACE)
    voided = await client.post(f"/v1/billing/admin/invoices/{invoice_id}/void", headers=operator)
    assert voided.status_code == 200, voided.text
    assert voided.json()["state"] == "void"
    again = await client.post(f"/v1/billing/admin/invoices/{invoice_id}/void", headers=operator)
    assert again.json()["voided_at"] == voided.json()["voided_at"]
    assert_problem(
        await client.post(f"/v1/billing/admin/invoices/{invoice_id}/pay", headers=operator),
        409,
        "invoice-state",
    )
    shown = (await client.get(f"/v1/billing/invoices/{invoice_id}", headers=acme.user())).json()
    assert (shown["state"], shown["number"]) == ("void", voided.json()["number"])


async def test_paying_and_voiding_in_ledger_mode(client, db, billing_app, metering, acme, operator):
    await ended_period(db, acme, "pro")
    [invoice_id] = await close(db, billing_app, END + GRACE)
    pay = f"/v1/billing/admin/invoices/{invoice_id}/pay"
    void = f"/v1/billing/admin/invoices/{invoice_id}/void"
    assert_problem(await client.post(pay, headers=acme.user("org_admin")), 403)
    paid = await client.post(pay, headers=operator)
    assert paid.status_code == 200, paid.text
    assert paid.json()["state"] == "paid"
    again = await client.post(pay, headers=operator)
    assert (again.status_code, again.json()["paid_at"]) == (200, paid.json()["paid_at"])
    assert_problem(await client.post(void, headers=operator), 409, "invoice-state")
    async with db() as session:
        events = (
            await session.execute(
                sa.text(
                    "SELECT subject, payload->'data'->>'state' FROM billing.outbox"
                    " WHERE payload->>'orgid' = :org AND subject LIKE 'tollgate.billing.invoice.%'"
                    " ORDER BY position"
                ),
                {"org": str(acme.org_id)},
            )
        ).all()
    # Paying twice published once.
    assert [tuple(row) for row in events] == [
        ("tollgate.billing.invoice.finalized", "open"),
        ("tollgate.billing.invoice.paid", "paid"),
    ]
    assert_problem(
        await client.post(f"/v1/billing/admin/invoices/{uuid.uuid4()}/pay", headers=operator),
        404,
    )


async def test_bad_invoice_requests_are_clear_4xx(client, acme, operator):
    assert_problem(await client.get("/v1/billing/invoices/nope", headers=acme.user()), 422)
    assert_problem(
        await client.get(f"/v1/billing/invoices/{uuid.uuid4()}", headers=acme.user()), 404
    )
    assert_problem(await client.get("/v1/billing/invoices?limit=0", headers=acme.user()), 422)
    assert_problem(
        await client.get("/v1/billing/invoices?cursor=garbage", headers=acme.user()), 400
    )
    assert_problem(await client.get("/v1/billing/invoices", headers=acme.key("write")), 403)
    assert_problem(
        await client.get(
            "/v1/billing/admin/reconciliation",
            params={"organization_id": str(acme.org_id), "period_start": "yesterday"},
            headers=operator,
        ),
        422,
    )
    assert_problem(
        await client.get(
            "/v1/billing/admin/reconciliation",
            params={"organization_id": str(acme.org_id), "period_start": START.isoformat()},
            headers=operator,
        ),
        404,
    )
    # No subscription yet: no running period to project.
    assert_problem(await client.get("/v1/billing/invoices/upcoming", headers=acme.user()), 404)


async def test_concurrent_closers_bill_each_period_once_with_gapless_numbers(
    committed_app, billing_app, metering
):
    """Real commits from several connections: three closers at once over the same drafts, after
    one that failed half way (metering unreachable) and gave everything back."""
    db = committed_app.state.runtime.sessionmaker
    orgs = [uuid.uuid4() for _ in range(6)]
    for org_id in orgs:
        await new_subscription(db, org_id=org_id, plan="free", now=START)
    await roll_due_subscriptions(db, default_plan="free", now=END + timedelta(seconds=1))

    broken = MeteringUsageClient(base_url="http://127.0.0.1:9", private_key=generate_keypair()[0])
    assert await close_periods(db, metering=broken, grace=GRACE, now=END + GRACE) == []

    closers = [
        close_periods(db, metering=billing_app.state.metering_usage, grace=GRACE, now=END + GRACE)
        for _ in range(3)
    ]
    closed = [invoice for run in await asyncio.gather(*closers) for invoice in run]
    assert len(closed) == len(set(closed))
    async with db() as session:
        per_org = dict(
            (
                await session.execute(
                    sa.text(
                        "SELECT org_id, count(*) FROM billing.invoices"
                        " WHERE org_id = ANY(:orgs) AND number IS NOT NULL GROUP BY org_id"
                    ),
                    {"orgs": orgs},
                )
            ).all()
        )
        numbers = (
            await session.execute(
                sa.text("SELECT number FROM billing.invoices WHERE number IS NOT NULL")
            )
        ).scalars()
        last = await session.scalar(
            sa.text("SELECT last_number FROM billing.invoice_number_sequences")
        )
    assert per_org == {org_id: 1 for org_id in orgs}
    # Every number taken is on exactly one invoice: none skipped, none twice.
    assert sorted(int(number.removeprefix("INV-")) for number in numbers) == list(
        range(1, last + 1)
    )


async def test_the_pdf_reads_back_with_number_lines_and_total(
    client, db, billing_app, metering, acme, globex
):
    await ended_period(db, acme, await metered_plan(db))
    await metering.store(
        acme.org_id,
        *[("api_requests", "k", START + timedelta(hours=1, seconds=n), REQUEST) for n in range(4)],
    )
    [invoice_id] = await close(db, billing_app, END + GRACE)
    invoice = (await client.get(f"/v1/billing/invoices/{invoice_id}", headers=acme.user())).json()
    response = await client.get(f"/v1/billing/invoices/{invoice_id}/pdf", headers=acme.user())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert invoice["number"] in text
    assert "Metered (monthly)" in text
    assert "api_requests: 4 (2 included)" in text
    # $10 fee + 2 billable x $0.005 = $0.01.
    assert "10.00 USD" in text
    assert "Total: 10.01 USD" in text
    assert_problem(
        await client.get(f"/v1/billing/invoices/{invoice_id}/pdf", headers=globex.user()), 404
    )


async def test_the_pdf_prints_names_in_any_covered_script_with_bill_to_and_issuer(
    client, db, billing_app, metering, acme, settings, monkeypatch
):
    customer = "Łódź Café — Zürich €"
    plan = "Тариф «Москва» · Ελλάδα ₹"  # Cyrillic, Greek, ₹: none of them in Latin-1
    issuer = "Nordlicht Ærø ApS, Straße 7 — Kraków"
    monkeypatch.setattr(settings, "invoice_issuer", issuer)
    await ended_period(db, acme, await metered_plan(db, name=plan))
    async with db() as session, session.begin():
        await session.execute(
            sa.text("UPDATE billing.customers SET name = :name WHERE org_id = :org"),
            {"name": customer, "org": acme.org_id},
        )
    await metering.store(acme.org_id, ("api_requests", "k", START + timedelta(hours=1), REQUEST))
    [invoice_id] = await close(db, billing_app, END + GRACE)

    response = await client.get(f"/v1/billing/invoices/{invoice_id}/pdf", headers=acme.key("read"))
    assert response.status_code == 200, response.text
    reader = PdfReader(io.BytesIO(response.content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    lines = text.splitlines()
    assert f"Issued by: {issuer}" in lines
    assert lines[lines.index("Bill to:") + 1 : lines.index("Bill to:") + 3] == [
        customer,
        f"Organisation: {acme.org_id}",
    ]
    assert f"{plan} (monthly)" in text
    assert "Amount (USD)" in text
    assert "Total: 10.00 USD" in text  # 1 request, 2 included: the fee alone
    assert "?" not in text  # nothing replaced
    # Both weights embedded (as subsets: "ABCDEF+" before the name), no core font.
    fonts = {
        str(font["/BaseFont"]).split("+")[-1]
        for page in reader.pages
        for font in page["/Resources"]["/Font"].values()
    }
    assert fonts == {"NotoSans", "NotoSansBold"}


async def test_a_change_in_the_second_the_period_started_makes_the_draft_its_own(db, acme):
    """Signup then an upgrade within the same second: the free period lasted no time, so its
    draft becomes the trial's (no base fee), not a second draft of the same start."""
    from tollgate_billing.subscriptions.models import Interval
    from tollgate_billing.subscriptions.schemas import Moment
    from tollgate_billing.subscriptions.service import change_plan

    from .subscription_helpers import load

    await new_subscription(db, org_id=acme.org_id, plan="free", now=START)
    async with db() as session, session.begin():
        await change_plan(
            session,
            subscription=await load(session, acme.org_id),
            plan_key="pro",
            interval=Interval.MONTH,
            at=Moment.NOW,
            now=START + timedelta(microseconds=300_000),
            default_plan="free",
        )
    async with db() as session:
        drafts = (
            await session.execute(
                sa.text(
                    "SELECT plan_key, base_fee_due, ended_at, period_end - period_start"
                    " FROM billing.invoices WHERE org_id = :org"
                ),
                {"org": acme.org_id},
            )
        ).all()
    assert [tuple(row) for row in drafts] == [("pro", False, None, timedelta(days=14))]


async def test_invoices_are_listed_newest_period_first_by_cursor(
    client, db, billing_app, metering, acme
):
    await new_subscription(db, org_id=acme.org_id, plan="free", now=START)
    three_months_on = datetime(2026, 6, 14, 10, 47, 43, tzinfo=UTC)
    await roll_due_subscriptions(db, default_plan="free", now=three_months_on)
    closed = await close(db, billing_app, three_months_on + GRACE)
    assert len(closed) == 3
    first = await client.get("/v1/billing/invoices", params={"limit": 2}, headers=acme.user())
    page = first.json()
    rest = await client.get(
        "/v1/billing/invoices",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=acme.user(),
    )
    starts = [item["period_start"][:10] for item in page["items"] + rest.json()["items"]]
    assert starts == ["2026-05-14", "2026-04-14", "2026-03-14"]
    assert rest.json()["next_cursor"] is None
    numbers = [item["number"] for item in page["items"] + rest.json()["items"]]
    # Closed oldest first: numbers follow the periods.
    assert numbers == sorted(numbers, reverse=True)


async def test_the_operator_can_run_the_period_close_now(
    client, db, billing_app, metering, acme, operator
):
    await ended_period(db, acme, "free")  # ended long ago: past the default grace window
    assert_problem(
        await client.post(
            "/v1/billing/admin/invoices/close-periods", headers=acme.user("org_admin")
        ),
        403,
    )
    first = await client.post("/v1/billing/admin/invoices/close-periods", headers=operator)
    assert first.status_code == 200, first.text
    [invoice_id] = [
        found
        for found in first.json()["finalized"]
        if (await client.get(f"/v1/billing/invoices/{found}", headers=acme.user())).status_code
        == 200
    ]
    second = await client.post("/v1/billing/admin/invoices/close-periods", headers=operator)
    assert invoice_id not in second.json()["finalized"]


async def test_a_close_that_fails_midway_keeps_nothing_and_the_rerun_bills_once(
    client, db, billing_app, metering, acme
):
    """A failure at the last step (taking the number, after the lines were written) rolls the
    whole invoice back; the next round bills the period once, with the next number."""
    await ended_period(db, acme, await metered_plan(db))
    await metering.store(acme.org_id, ("api_requests", "k", START + timedelta(days=1), REQUEST))
    async with db() as session, session.begin():
        await session.execute(
            sa.text(
                "CREATE FUNCTION billing.fail_numbering() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'crash while taking the number'; END $$"
            )
        )
        await session.execute(
            sa.text(
                "CREATE TRIGGER crash BEFORE UPDATE ON billing.invoice_number_sequences"
                " FOR EACH ROW EXECUTE FUNCTION billing.fail_numbering()"
            )
        )
        last_number = await session.scalar(
            sa.text("SELECT last_number FROM billing.invoice_number_sequences")
        )
    assert await close(db, billing_app, END + GRACE) == []

    async def written() -> tuple:
        async with db() as session:
            row = (
                await session.execute(
                    sa.text(
                        "SELECT i.state, i.number, count(l.id) FROM billing.invoices i"
                        " LEFT JOIN billing.invoice_lines l ON l.invoice_id = i.id"
                        " WHERE i.org_id = :org AND i.period_start = :start"
                        " GROUP BY i.id"
                    ),
                    {"org": acme.org_id, "start": START},
                )
            ).one()
            return tuple(row)

    assert await written() == ("draft", None, 0)
    async with db() as session, session.begin():
        await session.execute(sa.text("DROP TRIGGER crash ON billing.invoice_number_sequences"))
    [invoice_id] = await close(db, billing_app, END + GRACE)
    assert await written() == ("open", f"INV-{last_number + 1:06d}", 2)
    assert await close(db, billing_app, END + GRACE * 2) == []
    invoice = (await client.get(f"/v1/billing/invoices/{invoice_id}", headers=acme.user())).json()
    assert [(line["kind"], line["quantity"]) for line in invoice["lines"]] == [
        ("base_fee", None),
        ("metered", "1"),
    ]
