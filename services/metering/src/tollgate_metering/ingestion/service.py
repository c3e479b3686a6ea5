"""The rules for usage events: accept a batch (the good ones, each once), list them."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.db_types import utcnow
from tollgate_metering.ingestion.cursor import EventCursor
from tollgate_metering.ingestion.models import UsageEvent
from tollgate_metering.ingestion.repository import UsageEventRepository
from tollgate_metering.ingestion.schemas import (
    MAX_EVENTS_PER_REQUEST,
    EventFilters,
    FieldError,
    IngestResult,
    NewEvent,
    RejectedEvent,
    TimeRules,
    TimeWindow,
    UsageEventPublic,
)
from tollgate_metering.ingestion.validation import check_event
from tollgate_metering.meters.service import meters_by_key
from tollgate_shared.errors import ValidationProblem
from tollgate_shared.pagination import Page


class EventsRejectedError(ValidationProblem):
    """Not one event of the request could be accepted."""


async def ingest_events(
    session: AsyncSession, *, org_id: uuid.UUID, body: dict[str, Any] | list[Any], rules: TimeRules
) -> IngestResult:
    """Store the valid events of the body (one event or a list), each id once per organisation,
    and report every invalid one by its position. All of it in the caller's one transaction."""
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > MAX_EVENTS_PER_REQUEST:
        raise EventsRejectedError(
            f"Send between 1 and {MAX_EVENTS_PER_REQUEST} events per request.",
            errors=[
                FieldError(
                    loc=["body"],
                    message=f"must hold 1 to {MAX_EVENTS_PER_REQUEST} events, not {len(items)}",
                    type="batch_size",
                ).model_dump()
            ],
        )
    now = utcnow()
    window = TimeWindow.around(now, rules)
    named_types = {item["type"] for item in items if _has_text(item, "type")}
    meters = await meters_by_key(session, org_id=org_id, keys=named_types)
    accepted: dict[str, NewEvent] = {}
    valid, rejected = 0, []
    for index, item in enumerate(items):
        checked = check_event(item, meters=meters, window=window, now=now)
        if isinstance(checked, list):
            event_id = item["id"] if _has_text(item, "id") else None
            rejected.append(RejectedEvent(index=index, id=event_id, errors=checked))
            continue
        valid += 1
        # A repeat within the batch is a duplicate like any other: the first one wins.
        accepted.setdefault(checked.id, checked)
    if not valid:
        raise EventsRejectedError(
            f"None of the {len(items)} event(s) is valid.",
            errors=_flat_errors(rejected, single=not isinstance(body, list)),
            rejected=[event.model_dump() for event in rejected],
        )
    inserted = await UsageEventRepository(session).insert_new(
        org_id=org_id, source="api", events=list(accepted.values())
    )
    return IngestResult(inserted=inserted, duplicates=valid - inserted, rejected=rejected)


def _has_text(item: Any, name: str) -> bool:
    return isinstance(item, dict) and isinstance(item.get(name), str)


def _flat_errors(rejected: Sequence[RejectedEvent], *, single: bool) -> list[dict[str, Any]]:
    """Errors in the shape of every other validation problem: loc from the body down."""
    return [
        {
            "loc": ["body", *([] if single else [str(event.index)]), *error.loc],
            "message": error.message,
            "type": error.type,
        }
        for event in rejected
        for error in event.errors
    ]


def to_public(event: UsageEvent) -> UsageEventPublic:
    return UsageEventPublic(
        id=event.id,
        type=event.type,
        subject=event.subject,
        time=event.time,
        data=event.data,
        received_at=event.received_at,
        source=event.source,
    )


async def list_events(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    filters: EventFilters,
    cursor: EventCursor | None,
    limit: int,
) -> Page[UsageEventPublic]:
    rows = list(
        await UsageEventRepository(session).list_page(
            org_id=org_id, filters=filters, after=cursor, limit=limit
        )
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = EventCursor(time=rows[-1].time, id=rows[-1].id).encode()
    return Page(items=[to_public(event) for event in rows], next_cursor=next_cursor)
