"""Billing's client of metering: an organisation's usage over one billing period.

Metering's rollups are per minute, so usage is attributed by the minute an event falls in. A
period [start, end) is read as [start, end) rounded down to whole minutes: the minute in which
a period starts belongs to it (usage right after a plan change is the new period's), and
consecutive periods share their edge, so every minute (and every event) lands in exactly one
period's invoice. A running period (the upcoming invoice) is read up to the end of the current
minute, so it includes everything so far.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from tollgate_shared.errors import ServiceUnavailableError
from tollgate_shared.identity import IDENTITY_HEADER, TokenSigner, service_signer

_MINUTE = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def usage_minute(moment: datetime) -> datetime:
    """The minute moment falls in: where a period's usage starts or ends."""
    return _EPOCH + (moment - _EPOCH) // _MINUTE * _MINUTE


def usage_window(
    period_start: datetime, period_end: datetime, *, running: bool = False
) -> tuple[datetime, datetime]:
    """The whole minutes whose usage a period bills; a running period's up to now inclusive."""
    end = usage_minute(period_end)
    if running and end != period_end:
        end += _MINUTE
    return usage_minute(period_start), end


class MeteringUnavailableError(ServiceUnavailableError):
    slug, title = "metering-unavailable", "Metering unavailable"


@dataclass(frozen=True)
class PeriodUsage:
    usage_from: datetime
    usage_to: datetime
    quantities: dict[str, Decimal]  # meter key -> exact quantity (every meter of the org)

    def of(self, meter: str) -> Decimal:
        return self.quantities.get(meter, Decimal(0))


class MeteringUsageClient:
    """Calls metering's GET /internal/v1/usage with billing's own service token."""

    def __init__(
        self,
        *,
        base_url: str,
        private_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._signer: TokenSigner = service_signer(private_key, caller="billing", callee="metering")
        self._transport = transport
        self._timeout = timeout_seconds

    async def period_usage(
        self,
        *,
        org_id: uuid.UUID,
        period_start: datetime,
        period_end: datetime,
        running: bool = False,
    ) -> PeriodUsage:
        """The usage of the period [period_start, period_end) (usage_window); running: the
        period is still going on, period_end is now."""
        usage_from, usage_to = usage_window(period_start, period_end, running=running)
        if usage_to <= usage_from:  # a period shorter than a minute inside one minute
            return PeriodUsage(usage_from, usage_to, {})
        token = self._signer.sign({"ptype": "service", "sub": "billing"})
        try:
            async with httpx.AsyncClient(
                base_url=self.base_url, transport=self._transport, timeout=self._timeout
            ) as http:
                response = await http.get(
                    "/internal/v1/usage",
                    params={
                        "organization_id": str(org_id),
                        "from": usage_from.isoformat(),
                        "to": usage_to.isoformat(),
                    },
                    headers={IDENTITY_HEADER: token},
                )
        except httpx.HTTPError as error:
            raise MeteringUnavailableError("Metering could not be reached.") from error
        if response.status_code != 200:
            raise MeteringUnavailableError(
                f"Metering answered {response.status_code} to a usage read."
            )
        body = response.json()
        return PeriodUsage(
            usage_from,
            usage_to,
            {row["meter"]: Decimal(row["value"]) for row in body["data"]},
        )
