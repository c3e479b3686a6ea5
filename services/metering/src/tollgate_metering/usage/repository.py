"""Every read of usage: from the rollup tables only, never from raw events (which expire)."""

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class UsageRow:
    window_index: int | None
    meter_key: str
    subject: str | None
    group_values: tuple[Any, ...]
    value: Decimal


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
        excluded_group: Mapping[str, Any] | None = None,
    ) -> list[UsageRow]:
        """The aggregation over the minute buckets in [time_from, time_to) of meters sharing it,
        per meter and, when asked, per window (boundaries), subject and group_by property.
        required_group keeps only the buckets whose group_key holds these property values,
        excluded_group leaves them out."""
        table = (
            "usage_distinct_values" if aggregation == Aggregation.UNIQUE_COUNT else "usage_rollups"
        )
        parameters: dict[str, Any] = {
            "org_id": org_id,
            "meter_keys": list(meter_keys),
            "time_from": time_from,
            "time_to": time_to,
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
            "bucket_start >= :time_from",
            "bucket_start < :time_to",
        ]
        if subjects:
            conditions.append("subject = ANY(CAST(:subjects AS text[]))")
            parameters["subjects"] = list(subjects)
        if required_group:
            conditions.append("group_key @> CAST(:required_group AS jsonb)")
            parameters["required_group"] = json.dumps(required_group)
        if excluded_group:
            conditions.append("NOT (group_key @> CAST(:excluded_group AS jsonb))")
            parameters["excluded_group"] = json.dumps(excluded_group)
        positions = ", ".join(str(number) for number in range(1, len(dimensions) + 1))
        # Only fixed fragments are formatted in; every value the caller sent is a parameter.
        query = sa.text(
            f"SELECT {', '.join(dimensions)}, {_VALUE[aggregation]}"  # noqa: S608
            f" FROM metering.{table} WHERE {' AND '.join(conditions)}"
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
