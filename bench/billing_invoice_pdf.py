"""How long billing takes to render an invoice PDF: the first one in a process (which cuts the
fixed weights out of the variable Noto Sans font, once) beside the ones after it.

    uv run python bench/billing_invoice_pdf.py --renders 50

Renders an invoice of 20 lines with accented, Greek and Cyrillic text in one process and prints
the first render, then the median and p99 of the following ones, in milliseconds.
"""

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from tollgate_billing.invoices.pdf import render_invoice_pdf
from tollgate_billing.invoices.schemas import BillTo, InvoiceLinePublic, InvoicePublic

START = datetime(2026, 11, 1, tzinfo=UTC)


def invoice(lines: int) -> InvoicePublic:
    rows = [
        InvoiceLinePublic(
            kind="metered",
            description=f"Тариф «Москва» · Ελλάδα · Łódź — meter {n}",
            meter=f"meter_{n}",
            quantity=Decimal(1_234_567 + n),
            amount=1_185 + n,
        )
        for n in range(lines)
    ]
    return InvoicePublic(
        id=uuid.uuid4(),
        number="INV-000001",
        state="open",
        currency="EUR",
        plan="pro",
        interval="month",
        period_start=START,
        period_end=datetime(2026, 12, 1, tzinfo=UTC),
        usage_from=START,
        usage_to=datetime(2026, 12, 1, tzinfo=UTC),
        subtotal=sum(row.amount for row in rows),
        total=sum(row.amount for row in rows),
        lines=rows,
        finalized_at=START,
        paid_at=None,
        voided_at=None,
        payment_attempts=0,
        next_payment_attempt_at=None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=50, help="renders after the first")
    parser.add_argument("--lines", type=int, default=20, help="lines per invoice")
    arguments = parser.parse_args()
    document = invoice(arguments.lines)
    bill_to = BillTo(name="Łódź Café — Zürich €", organization_id=uuid.uuid4())

    def render() -> float:
        started = time.perf_counter()
        render_invoice_pdf(document, bill_to=bill_to, issuer="Nordlicht Ærø ApS")
        return (time.perf_counter() - started) * 1000

    first = render()
    later = sorted(render() for _ in range(arguments.renders))
    p99 = later[min(len(later) - 1, round(0.99 * (len(later) - 1)))]
    print(f"invoice PDF, {arguments.lines} lines, {arguments.renders + 1} renders in one process")
    print(f"  first render (font cut once) {first:8.1f} ms")
    print(f"  later renders: median        {statistics.median(later):8.1f} ms")
    print(f"  later renders: p99           {p99:8.1f} ms")
    print(f"  first / median               {first / statistics.median(later):8.1f} x")


if __name__ == "__main__":
    main()
