"""An issued invoice as a PDF (fpdf2): issuer, bill-to, number, period, one row per line, total.

Text is set in Noto Sans (invoices/pdf_font.py), embedded as a subset of the glyphs used, so a
name or description prints as written in the scripts the font covers: Latin (with Latin
Extended and Vietnamese), Greek and Cyrillic, and the common currency signs (€ £ ¥ ₹ ₽ ₩ ...).
Text shaping is off: characters are drawn one by one, left to right, which these scripts need.
Not covered: CJK, Arabic, Hebrew, Thai and other scripts (a character the font lacks prints as
the font's blank .notdef glyph, never as "?", and fpdf2 logs a warning); right-to-left text and
scripts that need shaping (Devanagari conjuncts) are not promised either.
"""

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from tollgate_billing.invoices.pdf_font import FAMILY, font_files
from tollgate_billing.invoices.schemas import BillTo, InvoicePublic
from tollgate_billing.pricing.money import from_minor_units


def _money(amount: int, currency: str) -> str:
    return f"{from_minor_units(amount, currency)} {currency}"


def render_invoice_pdf(invoice: InvoicePublic, *, bill_to: BillTo, issuer: str) -> bytes:
    pdf = FPDF(format="A4")
    for style, path in font_files().items():
        pdf.add_font(FAMILY, style, path)
    pdf.set_title(f"Invoice {invoice.number}")
    pdf.set_author(issuer)
    pdf.set_creator("Tollgate billing")
    pdf.add_page()

    def line(text: str, *, height: float = 6) -> None:
        pdf.cell(0, height, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.set_font(FAMILY, "B", 16)
    line(f"Invoice {invoice.number}", height=10)
    pdf.set_font(FAMILY, size=10)
    line(f"Issued by: {issuer}")
    pdf.ln(2)
    pdf.set_font(FAMILY, "B", 10)
    line("Bill to:")
    pdf.set_font(FAMILY, size=10)
    line(bill_to.name)
    line(f"Organisation: {bill_to.organization_id}")
    pdf.ln(2)
    for label, value in (
        ("State", invoice.state),
        ("Plan", f"{invoice.plan} ({invoice.interval}ly)"),
        ("Period", f"{invoice.period_start.isoformat()} to {invoice.period_end.isoformat()}"),
        ("Issued", invoice.finalized_at.isoformat() if invoice.finalized_at else "-"),
        ("Currency", invoice.currency),
    ):
        line(f"{label}: {value}")
    pdf.ln(4)
    with pdf.table(
        col_widths=(95, 35, 20, 40), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT")
    ) as table:
        table.row(("Description", "Quantity", "Kind", f"Amount ({invoice.currency})"))
        for invoice_line in invoice.lines:
            table.row(
                (
                    invoice_line.description,
                    "" if invoice_line.quantity is None else str(invoice_line.quantity),
                    invoice_line.kind.replace("_", " "),
                    _money(invoice_line.amount, invoice.currency),
                )
            )
    pdf.ln(4)
    pdf.set_font(FAMILY, "B", 12)
    pdf.cell(0, 8, f"Total: {_money(invoice.total, invoice.currency)}", align="R")
    return bytes(pdf.output())
