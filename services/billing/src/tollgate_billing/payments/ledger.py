"""Ledger mode's sandbox cards (no payment provider): the test cards a new operator can try
billing with, each with a fixed outcome, like a provider's test mode."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxCard:
    brand: str
    failure: str | None  # every charge fails with this reason; None: every charge succeeds


TEST_CARDS = {
    "4242424242424242": SandboxCard(brand="visa", failure=None),
    # Accepted as a method; every charge declined.
    "4000000000000341": SandboxCard(brand="visa", failure="card_declined"),
    "4000000000009995": SandboxCard(brand="visa", failure="insufficient_funds"),
}
# Test card numbers end differently, so the stored last four digits name the card.
BY_LAST4 = {number[-4:]: card for number, card in TEST_CARDS.items()}


def luhn_valid(number: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def charge_failure(last4: str) -> str | None:
    """The reason a charge to the ledger card fails; None when it pays."""
    card = BY_LAST4.get(last4)
    return "card_declined" if card is None else card.failure
