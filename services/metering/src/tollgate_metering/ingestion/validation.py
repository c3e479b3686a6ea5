"""Is one incoming event acceptable? Its shape first, then what its meter requires of it."""

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tollgate_metering.ingestion.schemas import EventIn, FieldError, NewEvent, TimeWindow
from tollgate_metering.meters.schemas import NUMERIC_AGGREGATIONS, Aggregation, MeterPublic

MAX_VALUE = 1e15


def check_event(
    item: Any, *, meters: dict[str, MeterPublic], window: TimeWindow, now: datetime
) -> NewEvent | list[FieldError]:
    """The event ready to store, or everything wrong with it."""
    try:
        event = EventIn.model_validate(item, context=window)
    except ValidationError as error:
        return [
            FieldError(
                loc=[str(part) for part in detail["loc"]],
                message=detail["msg"],
                type=detail["type"],
            )
            for detail in error.errors(include_url=False)
        ]
    errors = meter_errors(event, meters.get(event.type))
    if errors:
        return errors
    return NewEvent(
        id=event.id,
        type=event.type,
        subject=event.subject,
        time=event.time or now,
        data_json=json.dumps(event.data, ensure_ascii=False, separators=(",", ":")),
    )


def meter_errors(event: EventIn, meter: MeterPublic | None) -> list[FieldError]:
    if meter is None:
        return [_error(["type"], f"No meter '{event.type}' in this organisation.", "unknown_meter")]
    if meter.archived_at is not None:
        return [_error(["type"], f"The meter '{meter.key}' is archived.", "meter_archived")]
    if meter.built_in:
        # Its events come from the gateway only: an API client must not add to them.
        message = f"The gateway records '{meter.key}' itself; it cannot be sent."
        return [_error(["type"], message, "built_in_meter")]
    if meter.value_property is None:
        return []
    name = meter.value_property
    where = ["data", name]
    if name not in event.data:
        return [_error(where, f"The {meter.aggregation} meter '{meter.key}' needs it.", "missing")]
    value = event.data[name]
    # bool is an int in Python, but true is no quantity.
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if meter.aggregation == Aggregation.UNIQUE_COUNT:
        if not (is_number or isinstance(value, str)):
            return [_error(where, "must be a string or a number", "string_or_number_type")]
        return []
    assert meter.aggregation in NUMERIC_AGGREGATIONS
    if not is_number:
        return [_error(where, "must be a number", "number_type")]
    # NaN and Infinity never get this far: data with them is refused as a whole.
    if value < 0:
        return [_error(where, "must be at least 0", "greater_than_equal")]
    if value > MAX_VALUE:
        return [_error(where, f"must be at most {MAX_VALUE:.0e}", "less_than_equal")]
    return []


def _error(loc: list[str], message: str, type_: str) -> FieldError:
    return FieldError(loc=loc, message=message, type=type_)
