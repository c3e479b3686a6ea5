"""An issued invoice as a PDF (fpdf2): number, period, one row per line, total.

fpdf2's built-in Helvetica covers Latin-1 only; any other character in a plan or line name is
printed as "?" (embedding a Unicode font would add a font file to the image for this alone)."""

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from tollgate_billing.invoices.schemas import InvoicePublic
from tollgate_billing.pricing.money import from_minor_units


def _latin1(text: str) -> str:
    return text.encode("latin-1", errors="replace").decode("latin-1")


def _money(amount: int, currency: str) -> str:
    return f"{from_minor_units(amount, currency)} {currency}"


def render_invoice_pdf(invoice: InvoicePublic, *, issuer: str = "Tollgate") -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(f"Invoice {invoice.number}")
    pdf.set_creator("Tollgate billing")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(
        0, 10, _latin1(f"{issuer} - Invoice {invoice.number}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.set_font("Helvetica", size=10)
    for label, value in (
        ("State", invoice.state),
        ("Plan", f"{invoice.plan} ({invoice.interval}ly)"),
        ("Period", f"{invoice.period_start.isoformat()} to {invoice.period_end.isoformat()}"),
        ("Issued", invoice.finalized_at.isoformat() if invoice.finalized_at else "-"),
        ("Currency", invoice.currency),
    ):
        pdf.cell(0, 6, _latin1(f"{label}: {value}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    with pdf.table(
        col_widths=(95, 35, 20, 40), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT")
    ) as table:
        table.row(("Description", "Quantity", "Kind", "Amount"))
        for line in invoice.lines:
            table.row(
                (
                    _latin1(line.description),
                    "" if line.quantity is None else str(line.quantity),
                    line.kind.replace("_", " "),
                    _money(line.amount, invoice.currency),
                )
            )
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, f"Total: {_money(invoice.total, invoice.currency)}", align="R")
    return bytes(pdf.output())
