from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

METER_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
MAX_GROUP_BY = 10


class Aggregation(StrEnum):
    SUM = "SUM"
    COUNT = "COUNT"
    MAX = "MAX"
    MIN = "MIN"
    UNIQUE_COUNT = "UNIQUE_COUNT"
    LATEST = "LATEST"


# Aggregations over a number taken from each event's data[value_property].
NUMERIC_AGGREGATIONS = frozenset(
    {Aggregation.SUM, Aggregation.MAX, Aggregation.MIN, Aggregation.LATEST}
)


def _without_repeats(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


MeterKey = Annotated[str, Field(pattern=METER_KEY_PATTERN, description="Also the events' type")]
MeterName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
# A top-level property of an event's data.
PropertyName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")]
GroupBy = Annotated[
    list[PropertyName], Field(max_length=MAX_GROUP_BY), AfterValidator(_without_repeats)
]


class MeterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: MeterKey
    name: MeterName
    aggregation: Aggregation
    value_property: PropertyName | None = Field(
        None, description="The data property holding the value; required unless COUNT"
    )
    group_by: GroupBy = Field(default_factory=list)

    @model_validator(mode="after")
    def _value_property_matches_aggregation(self) -> "MeterCreate":
        if self.aggregation == Aggregation.COUNT and self.value_property is not None:
            raise ValueError("a COUNT meter counts events and takes no value_property")
        if self.aggregation != Aggregation.COUNT and self.value_property is None:
            raise ValueError(f"a {self.aggregation} meter needs a value_property")
        return self


class MeterUpdate(BaseModel):
    """Only name and group_by change. A meter's aggregation and value_property are fixed for
    life, so its stored events always mean one thing: create another meter instead."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: MeterName | None = None
    group_by: GroupBy | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> "MeterUpdate":
        if not self.model_fields_set:
            raise ValueError("send name or group_by")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class MeterPublic(BaseModel):
    key: str
    name: str
    aggregation: Aggregation
    value_property: str | None
    group_by: list[str]
    built_in: bool = Field(description="Defined by Tollgate for every organisation; read-only")
    created_at: datetime | None = Field(description="Null for built-in meters")
    updated_at: datetime | None = Field(description="Null for built-in meters")
    archived_at: datetime | None = Field(
        description="Set once archived: the meter takes no new events; its events stay"
    )
