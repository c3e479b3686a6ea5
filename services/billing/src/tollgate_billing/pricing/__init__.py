"""The pricing engine: pure functions from a quantity, a price scheme and a currency to money.

No I/O here. Rounding rule: docs/adr/0015-money-and-rounding.md.
"""
