import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from tollgate_metering.auth import EventWriter, OrgReader
from tollgate_metering.config import MeteringSettings
from tollgate_metering.ingestion import service
from tollgate_metering.ingestion.cursor import EventCursor
from tollgate_metering.ingestion.schemas import (
    MAX_EVENTS_PER_REQUEST,
    EventFilters,
    EventIn,
    IngestResult,
    Subject,
    TimeRules,
    UsageEventPublic,
)
from tollgate_metering.meters.schemas import METER_KEY_PATTERN
from tollgate_shared.database import SessionDep
from tollgate_shared.errors import ValidationProblem
from tollgate_shared.pagination import Page

router = APIRouter(prefix="/v1/events", tags=["usage events"])


async def _json_body(request: Request) -> Any:
    """The body as JSON, whatever its shape: each event of a list is judged on its own (a bad
    one must not sink the others), so FastAPI cannot validate it as a whole."""
    try:
        return json.loads(await request.body())
    except ValueError as error:
        position = error.pos if isinstance(error, json.JSONDecodeError) else 0
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error"}]
        ) from None
    except RecursionError:
        raise ValidationProblem(
            "The body nests arrays or objects too deeply to be read.",
            errors=[{"loc": ["body"], "message": "nested too deeply", "type": "json_too_deep"}],
        ) from None


def _time_rules(request: Request) -> TimeRules:
    settings: MeteringSettings = request.app.state.settings
    return TimeRules(
        late=timedelta(days=settings.late_event_days),
        future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
    )


def _event_schema() -> dict[str, Any]:
    event = EventIn.model_json_schema()
    return {
        "oneOf": [
            event,
            {"type": "array", "items": event, "minItems": 1, "maxItems": MAX_EVENTS_PER_REQUEST},
        ]
    }


@router.post(
    "",
    response_model=IngestResult,
    # The body is read by _json_body, so FastAPI cannot describe it: say what it is here.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _event_schema()}},
        }
    },
)
async def ingest_events(
    identity: EventWriter,
    session: SessionDep,
    body: Annotated[Any, Depends(_json_body)],
    rules: Annotated[TimeRules, Depends(_time_rules)],
) -> IngestResult:
    """Report usage: one event, or a list of up to 1,000.

    The valid events are stored and the invalid ones listed in `rejected` by position, with
    their errors; nothing of an invalid event is stored. An id the organisation already sent
    (in this request or before) counts as a duplicate and is not stored again. When no event is
    valid the answer is a 422 problem with the same `rejected` list.
    """
    if not isinstance(body, dict | list):
        raise ValidationProblem(
            "The body must be an event object or a list of them.",
            errors=[{"loc": ["body"], "message": "must be an object or a list", "type": "type"}],
        )
    assert identity.org_id is not None
    return await service.ingest_events(session, org_id=identity.org_id, body=body, rules=rules)


def _filters(
    type: Annotated[str | None, Query(pattern=METER_KEY_PATTERN)] = None,
    subject: Annotated[Subject | None, Query()] = None,
    time_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    time_to: Annotated[AwareDatetime | None, Query(alias="to")] = None,
) -> EventFilters:
    if time_from is not None and time_to is not None and time_to <= time_from:
        raise ValidationProblem(
            "'to' must be after 'from'.",
            errors=[{"loc": ["query", "to"], "message": "must be after from", "type": "range"}],
        )
    return EventFilters(type=type, subject=subject, time_from=time_from, time_to=time_to)


@router.get("", response_model=Page[UsageEventPublic])
async def list_events(
    identity: OrgReader,
    session: SessionDep,
    filters: Annotated[EventFilters, Depends(_filters)],
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> Page[UsageEventPublic]:
    """Stored events, newest first (by time, then id); `from` inclusive, `to` exclusive."""
    assert identity.org_id is not None
    return await service.list_events(
        session,
        org_id=identity.org_id,
        filters=filters,
        cursor=EventCursor.decode(cursor) if cursor else None,
        limit=limit,
    )
