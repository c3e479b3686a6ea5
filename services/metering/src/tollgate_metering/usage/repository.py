"""Every read of usage: from the rollup tables only (minute, hour and day), never from raw events
(which expire)."""

import itertools
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.meters.schemas import Aggregation

# How each aggregation combines minute rollups into a window. A distinct count cannot be added
# up, so UNIQUE_COUNT counts the distinct values kept per minute bucket instead.
_VALUE = {
    Aggregation.COUNT: "sum(event_count)",
    Aggregation.SUM: "sum(value_sum)",
    Aggregation.MIN: "min(value_min)",
    Aggregation.MAX: "max(value_max)",
    Aggregation.LATEST: (
        "(array_agg(latest_value ORDER BY latest_time DESC, latest_event_id DESC))[1]"
    ),
    Aggregation.UNIQUE_COUNT: "count(DISTINCT value)",
}


# The value columns each aggregation reads (the branches read only what the query uses).
_VALUE_COLUMNS = {
    Aggregation.COUNT: ["event_count"],
    Aggregation.SUM: ["value_sum"],
    Aggregation.MIN: ["value_min"],
    Aggregation.MAX: ["value_max"],
    Aggregation.LATEST: ["latest_value", "latest_time", "latest_event_id"],
    Aggregation.UNIQUE_COUNT: ["value"],
}


@dataclass(frozen=True)
class UsageRow:
    window_index: int | None
    meter_key: str
    subject: str | None
    group_values: tuple[Any, ...]
    value: Decimal


# Rollup tables from the coarsest to the finest, with the length of their buckets.
_RESOLUTIONS = (("_day", timedelta(days=1)), ("_hour", timedelta(hours=1)), ("", timedelta(0)))

Span = tuple[datetime, datetime]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _floor(moment: datetime, length: timedelta) -> datetime:
    return _EPOCH + (moment - _EPOCH) // length * length


def _ceil(moment: datetime, length: timedelta) -> datetime:
    floor = _floor(moment, length)
    return floor if floor == moment else floor + length


def plan_spans(edges: Sequence[datetime]) -> dict[str, list[Span]]:
    """Which rollup table answers which part of [edges[0], edges[-1]): per table suffix, the
    time spans to read from it.

    edges are the window boundaries (or just from and to). A UTC day or hour bucket is read
    only when it lies wholly inside one window, so every row still falls in exactly one window;
    inside each window the whole UTC days come from the day table, the whole hours around them
    from the hour table, and the minutes at the edges from the minute table. Adjacent spans
    are merged: a month of UTC day windows is one span of the day table.
    """
    spans: dict[str, list[Span]] = {suffix: [] for suffix, _ in _RESOLUTIONS}

    def add(suffix: str, start: datetime, end: datetime) -> None:
        if start >= end:
            return
        found = spans[suffix]
        if found and found[-1][1] == start:
            found[-1] = (found[-1][0], end)
        else:
            found.append((start, end))

    for start, end in itertools.pairwise(edges):
        pending = [(start, end)]
        for suffix, length in _RESOLUTIONS:
            remaining = []
            for piece_start, piece_end in pending:
                if not length:
                    add(suffix, piece_start, piece_end)
                    continue
                inner_start, inner_end = _ceil(piece_start, length), _floor(piece_end, length)
                if inner_start >= inner_end:
                    remaining.append((piece_start, piece_end))
                    continue
                add(suffix, inner_start, inner_end)
                remaining += [(piece_start, inner_start), (inner_end, piece_end)]
            pending = [
                (piece_start, piece_end)
                for piece_start, piece_end in remaining
                if piece_start < piece_end
            ]
    for found in spans.values():
        found.sort()
    return spans


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def aggregate(
        self,
        *,
        org_id: uuid.UUID,
        meter_keys: Sequence[str],
        aggregation: Aggregation,
        time_from: datetime,
        time_to: datetime,
        boundaries: Sequence[datetime] | None,
        subjects: Sequence[str],
        by_subject: bool,
        group_by: Sequence[str],
        required_group: Mapping[str, Any] | None = None,
        excluded_groups: Sequence[Mapping[str, Any]] = (),
    ) -> list[UsageRow]:
        """The aggregation over the minute buckets in [time_from, time_to) of meters sharing it,
        per meter and, when asked, per window (boundaries), subject and group_by property.
        required_group keeps only the buckets whose group_key holds these property values,
        excluded_groups leaves out those holding any of theirs.

        The minutes are read from the coarsest rollups that fit (plan_spans): UTC days and hours
        lying wholly inside one window come from the day and hour tables, which hold the same
        sums as their minutes, so the answer is the same as over minute rows alone."""
        table = (
            "usage_distinct_values" if aggregation == Aggregation.UNIQUE_COUNT else "usage_rollups"
        )
        parameters: dict[str, Any] = {
            "org_id": org_id,
            "meter_keys": list(meter_keys),
        }
        dimensions = [
            "width_bucket(bucket_start, :boundaries)" if boundaries is not None else "NULL",
            "meter_key",
            "subject" if by_subject else "NULL",
        ]
        for position, name in enumerate(group_by):
            dimensions.append(f"group_key -> CAST(:group_{position} AS text)")
            parameters[f"group_{position}"] = name
        conditions = [
            "org_id = :org_id",
            "meter_key = ANY(CAST(:meter_keys AS text[]))",
        ]
        if subjects:
            conditions.append("subject = ANY(CAST(:subjects AS text[]))")
            parameters["subjects"] = list(subjects)
        if required_group:
            conditions.append("group_key @> CAST(:required_group AS jsonb)")
            parameters["required_group"] = json.dumps(required_group)
        for position, excluded in enumerate(excluded_groups):
            conditions.append(f"NOT (group_key @> CAST(:excluded_{position} AS jsonb))")
            parameters[f"excluded_{position}"] = json.dumps(excluded)
        columns = ["bucket_start", "meter_key", "subject", *_VALUE_COLUMNS[aggregation]]
        if group_by:
            columns.append("group_key")
        spans = plan_spans(list(boundaries) if boundaries is not None else [time_from, time_to])
        branches = []
        for suffix, found in spans.items():
            if not found:
                continue
            # Each span a range condition of its own (not a join with an array of spans): the
            # planner then sees every range and reads each with an index range scan.
            ranges = []
            for number, (start, end) in enumerate(found):
                name = f"span{suffix}_{number}"
                parameters[f"{name}_start"], parameters[f"{name}_end"] = start, end
                ranges.append(f"(bucket_start >= :{name}_start AND bucket_start < :{name}_end)")
            branches.append(
                f"SELECT {', '.join(columns)} FROM metering.{table}{suffix}"  # noqa: S608
                f" WHERE {' AND '.join(conditions)} AND ({' OR '.join(ranges)})"
            )
        positions = ", ".join(str(number) for number in range(1, len(dimensions) + 1))
        # Only fixed fragments are formatted in; every value the caller sent is a parameter.
        query = sa.text(
            f"SELECT {', '.join(dimensions)}, {_VALUE[aggregation]}"  # noqa: S608
            f" FROM ({' UNION ALL '.join(branches)}) AS rollup"
            f" GROUP BY {positions} ORDER BY {positions}"
        )
        if boundaries is not None:
            moments = ARRAY(sa.DateTime(timezone=True))
            query = query.bindparams(sa.bindparam("boundaries", list(boundaries), type_=moments))
        result = await self.session.execute(query, parameters)
        return [
            UsageRow(
                window_index=row[0],
                meter_key=row[1],
                subject=row[2],
                group_values=tuple(row[3:-1]),
                value=Decimal(row[-1]),
            )
            for row in result.all()
        ]
