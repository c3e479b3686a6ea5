"""The entitlement states this gateway knows, newest version per (organisation, meter).

Events may come twice or out of order and the snapshot races with them, so every change goes
through `apply`, which keeps a state only if its version is higher than the one held. States
in grace or exceeded are also indexed by organisation: the per-request check is one dict lookup,
and finds nothing for the organisations that have nothing to enforce.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    model_validator,
)

Status = Literal["within", "grace", "exceeded", "removed"]
FLAGGED: frozenset[str] = frozenset({"grace", "exceeded"})
# Metering's meter keys; they are also safe inside a structured-field string.
METER_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

# JSON numbers as they came: an integer stays an int, anything else is a float.
Amount = Annotated[StrictInt | StrictFloat, Field(ge=0, allow_inf_nan=False)]


class EntitlementStateData(BaseModel):
    """The contract with metering: an event's data, or one item of the snapshot."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    organization_id: uuid.UUID
    meter: str = Field(pattern=METER_PATTERN)
    limit: Amount | None
    mode: Literal["hard", "soft"]
    grace_percent: Amount
    used: Amount
    status: Status
    period_start: AwareDatetime
    period_end: AwareDatetime
    version: StrictInt = Field(ge=0)

    @model_validator(mode="after")
    def _limit_unless_removed(self) -> "EntitlementStateData":
        if self.limit is None and self.status != "removed":
            raise ValueError("limit is required unless the entitlement was removed")
        return self


@dataclass(frozen=True, slots=True)
class EntitlementState:
    organization_id: uuid.UUID
    meter: str
    limit: int | float | None
    mode: Literal["hard", "soft"]
    grace_percent: int | float
    used: int | float
    status: Status
    period_start: datetime
    period_end: datetime
    version: int
    period_end_at: float  # period_end as a Unix time, for the per-request check

    @classmethod
    def parse(cls, raw: Any) -> "EntitlementState":
        """Raise pydantic.ValidationError for anything outside the contract."""
        data = EntitlementStateData.model_validate(raw)
        return cls(**dict(data), period_end_at=data.period_end.timestamp())

    @property
    def key(self) -> tuple[uuid.UUID, str]:
        return self.organization_id, self.meter

    def is_current(self, now: float) -> bool:
        """A state of a period that has ended means nothing: the new period starts fresh."""
        return now < self.period_end_at


@dataclass(frozen=True, slots=True)
class _Entry:
    state: EntitlementState
    sequence: int  # when it was applied, in this cache's own order


class EntitlementStates:
    def __init__(self) -> None:
        self._latest: dict[tuple[uuid.UUID, str], _Entry] = {}
        # Only grace and exceeded states, by organisation then meter: what requests look at.
        self._flagged: dict[uuid.UUID, dict[str, EntitlementState]] = {}
        self._sequence = 0

    def flagged_for(self, org_id: uuid.UUID) -> dict[str, EntitlementState] | None:
        """The organisation's states in grace or exceeded (periods not checked), or None."""
        return self._flagged.get(org_id)

    def version_of(self, org_id: uuid.UUID, meter: str) -> int | None:
        entry = self._latest.get((org_id, meter))
        return entry.state.version if entry is not None else None

    @property
    def flagged_count(self) -> int:
        return sum(len(meters) for meters in self._flagged.values())

    def apply(self, state: EntitlementState) -> bool:
        """Hold the state if it is newer than the one held; False for a duplicate or older one."""
        entry = self._latest.get(state.key)
        if entry is not None and entry.state.version >= state.version:
            return False
        self._sequence += 1
        self._latest[state.key] = _Entry(state, self._sequence)
        if state.status in FLAGGED:
            self._flagged.setdefault(state.organization_id, {})[state.meter] = state
        else:
            self._unflag(state.key)
        return True

    def mark(self) -> int:
        """Taken just before asking for a snapshot; give it back to `merge_snapshot`."""
        return self._sequence

    def merge_snapshot(self, states: list[EntitlementState], *, mark: int) -> None:
        """Merge metering's snapshot (every state in grace or exceeded; absent means within).

        A flagged state absent from the snapshot is within now, unless it was applied after the
        snapshot was asked for (`mark`): that event may be newer than the snapshot, so it stays.
        The state dropped keeps its version, so a late copy of it is still recognised as old.
        """
        listed = set()
        for state in states:
            listed.add(state.key)
            self.apply(state)
        for org_id, meters in list(self._flagged.items()):
            for meter in list(meters):
                key = (org_id, meter)
                entry = self._latest[key]
                if key not in listed and entry.sequence <= mark:
                    self._latest[key] = replace(entry, state=replace(entry.state, status="within"))
                    self._unflag(key)

    def prune(self, now: float) -> int:
        """Forget the states of ended periods; returns how many. Safe for versions: any older
        copy of a forgotten state is from an ended period too, so it is ignored anyway."""
        ended = [key for key, entry in self._latest.items() if not entry.state.is_current(now)]
        for key in ended:
            del self._latest[key]
            self._unflag(key)
        return len(ended)

    def _unflag(self, key: tuple[uuid.UUID, str]) -> None:
        org_id, meter = key
        meters = self._flagged.get(org_id)
        if meters is not None and meters.pop(meter, None) is not None and not meters:
            del self._flagged[org_id]
