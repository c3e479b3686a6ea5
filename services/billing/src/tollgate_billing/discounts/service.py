"""Discount codes: the operator's catalog of codes, a customer redeeming one (race-free count),
and the discount line of an invoice. Takes a session, never commits."""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_billing.customers.models import Customer
from tollgate_billing.customers.repository import CustomerRepository
from tollgate_billing.customers.service import CustomerNotFoundError
from tollgate_billing.discounts.models import DiscountCode, DiscountDuration, DiscountRedemption
from tollgate_billing.discounts.schemas import (
    DISCOUNT_CODE_PATTERN,
    CustomerDiscount,
    DiscountCreate,
    DiscountPublic,
)
from tollgate_billing.pricing.money import exact_arithmetic, from_minor_units, to_minor_units
from tollgate_shared.errors import ConflictError, NotFoundError

logger = structlog.get_logger(__name__)


class DiscountNotFoundError(NotFoundError):
    slug, title = "discount-not-found", "Discount not found"


class DiscountCodeTakenError(ConflictError):
    slug, title = "discount-code-taken", "Discount code taken"


class DiscountNotEligibleError(ConflictError):
    slug, title = "discount-not-eligible", "Discount not valid for your plan"


class DiscountExhaustedError(ConflictError):
    slug, title = "discount-exhausted", "Discount fully redeemed"


class DiscountAlreadyAppliedError(ConflictError):
    slug, title = "discount-already-applied", "A discount is already running"


def view(discount: DiscountCode) -> DiscountPublic:
    return DiscountPublic.model_validate(discount, from_attributes=True)


async def _by_code(
    session: AsyncSession, code: str, *, for_update: bool = False
) -> DiscountCode | None:
    if not re.fullmatch(DISCOUNT_CODE_PATTERN, code):
        # Never a code, answered without a query (PostgreSQL refuses a NUL in text: a 500).
        return None
    query = select(DiscountCode).where(sa.func.lower(DiscountCode.code) == code.lower())
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalars().first()


async def create_discount(
    session: AsyncSession, *, data: DiscountCreate, now: datetime
) -> DiscountPublic:
    discount = DiscountCode(
        **data.model_dump(exclude={"duration"}), duration=data.duration.value, created_at=now
    )
    try:
        async with session.begin_nested():
            session.add(discount)
            await session.flush()
    except IntegrityError as error:
        raise DiscountCodeTakenError(
            f"The code '{data.code}' exists (codes are case-insensitive and never reused)."
        ) from error
    return view(discount)


async def list_discounts(session: AsyncSession, *, include_archived: bool) -> list[DiscountPublic]:
    query = select(DiscountCode).order_by(col(DiscountCode.created_at), col(DiscountCode.id))
    if not include_archived:
        query = query.where(col(DiscountCode.archived_at).is_(None))
    return [view(discount) for discount in (await session.execute(query)).scalars()]


async def get_discount(session: AsyncSession, *, code: str) -> DiscountPublic:
    discount = await _by_code(session, code)
    if discount is None:
        raise DiscountNotFoundError(f"No discount code '{code}'.")
    return view(discount)


async def archive_discount(session: AsyncSession, *, code: str, now: datetime) -> DiscountPublic:
    """No new redemption; customers who redeemed it keep it. Again: no change."""
    discount = await _by_code(session, code, for_update=True)
    if discount is None:
        raise DiscountNotFoundError(f"No discount code '{code}'.")
    if discount.archived_at is None:
        discount.archived_at = now
        session.add(discount)
        await session.flush()
    return view(discount)


def _customer_view(redemption: DiscountRedemption, discount: DiscountCode) -> CustomerDiscount:
    return CustomerDiscount(
        id=redemption.id,
        code=discount.code,
        percent=discount.percent,
        amount_off=discount.amount_off,
        currency=discount.currency,
        duration=discount.duration,
        periods_left=redemption.periods_left,
        redeemed_at=redemption.redeemed_at,
    )


async def running_redemption(
    session: AsyncSession, customer_id: uuid.UUID, *, for_update: bool = False
) -> tuple[DiscountRedemption, DiscountCode] | None:
    query = (
        select(DiscountRedemption, DiscountCode)
        .join(DiscountCode, col(DiscountCode.id) == col(DiscountRedemption.discount_id))
        .where(
            col(DiscountRedemption.customer_id) == customer_id,
            col(DiscountRedemption.ended_at).is_(None),
        )
    )
    if for_update:
        query = query.with_for_update(of=DiscountRedemption)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def redeemable(
    session: AsyncSession,
    *,
    customer: Customer,
    code: str,
    plan_key: str,
    now: datetime,
    for_update: bool = False,
) -> DiscountCode:
    """The code if the customer may redeem it on the plan now, else the reason as a problem.
    Unknown, archived and expired codes are all 404 (a code's existence is not revealed)."""
    discount = await _by_code(session, code, for_update=for_update)
    if (
        discount is None
        or discount.archived_at is not None
        or (discount.expires_at is not None and discount.expires_at <= now)
    ):
        raise DiscountNotFoundError(f"No valid discount code '{code}'.")
    if await running_redemption(session, customer.id) is not None:
        raise DiscountAlreadyAppliedError(
            "Your organisation already has a running discount; one at a time."
        )
    if discount.plans is not None and plan_key not in discount.plans:
        raise DiscountNotEligibleError(
            f"The code is not valid for the plan '{plan_key}'.", plans=discount.plans
        )
    if discount.max_redemptions is not None and discount.redemptions >= discount.max_redemptions:
        raise DiscountExhaustedError("The code has been redeemed as many times as it may be.")
    return discount


async def redeem(
    session: AsyncSession, *, org_id: uuid.UUID, code: str, now: datetime
) -> CustomerDiscount:
    """The customer's discount from its next invoice on. The code's row is locked, so the
    count against max_redemptions is exact under concurrent redemptions."""
    customer = await CustomerRepository(session).of_org(org_id, for_update=True)
    if customer is None:
        raise CustomerNotFoundError("This organisation has no billing customer yet.")
    discount = await redeemable(
        session,
        customer=customer,
        code=code,
        plan_key=customer.plan_key,
        now=now,
        for_update=True,
    )
    discount.redemptions += 1
    periods_left = {
        DiscountDuration.ONCE: 1,
        DiscountDuration.REPEATING: discount.periods,
        DiscountDuration.FOREVER: None,
    }[DiscountDuration(discount.duration)]
    redemption = DiscountRedemption(
        discount_id=discount.id,
        customer_id=customer.id,
        org_id=org_id,
        periods_left=periods_left,
        redeemed_at=now,
    )
    session.add_all([discount, redemption])
    await session.flush()
    logger.info("discount redeemed", customer_id=str(customer.id), code=discount.code)
    return _customer_view(redemption, discount)


async def customer_discount(session: AsyncSession, *, org_id: uuid.UUID) -> CustomerDiscount:
    customer = await CustomerRepository(session).of_org(org_id)
    running = None if customer is None else await running_redemption(session, customer.id)
    if running is None:
        raise DiscountNotFoundError("Your organisation has no running discount.")
    return _customer_view(*running)


@dataclass(frozen=True)
class AppliedDiscount:
    redemption: DiscountRedemption
    description: str
    amount: int  # <= 0


def discount_amount(discount: DiscountCode, *, subtotal: int, currency: str) -> int | None:
    """Minor units off (positive), never more than the subtotal, never below zero; None when
    the code does not apply (a fixed amount in another currency than the invoice)."""
    base = max(subtotal, 0)
    if discount.percent is not None:
        with exact_arithmetic():
            exact = from_minor_units(base, currency) * discount.percent / 100
        return min(to_minor_units(exact, currency), base)
    if discount.currency != currency:
        return None
    assert discount.amount_off is not None
    return min(discount.amount_off, base)


async def discount_for_invoice(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    plan_key: str,
    subtotal: int,
    currency: str,
    lock: bool,
) -> AppliedDiscount | None:
    if subtotal <= 0:
        # Nothing to take off (a trial's period, credits): the discount waits for an invoice
        # that owes something, so a "once" code redeemed with a trial is not spent on $0.
        return None
    running = await running_redemption(session, customer_id, for_update=lock)
    if running is None:
        return None
    redemption, discount = running
    if discount.plans is not None and plan_key not in discount.plans:
        return None
    amount = discount_amount(discount, subtotal=subtotal, currency=currency)
    if amount is None:
        return None
    what = (
        f"{discount.percent.normalize():f} %"
        if discount.percent is not None
        else f"{from_minor_units(discount.amount_off or 0, currency)} {currency}"
    )
    return AppliedDiscount(redemption, f"Discount {discount.code} ({what} off)", -amount)


def use_one_period(session: AsyncSession, applied: AppliedDiscount, *, now: datetime) -> None:
    """On finalizing (in its transaction, the draft locked: a rerun of the close finds no draft,
    so never twice): one period fewer; the last one ends the redemption."""
    redemption = applied.redemption
    if redemption.periods_left is not None:
        redemption.periods_left -= 1
        if redemption.periods_left <= 0:
            redemption.ended_at = now
    session.add(redemption)
