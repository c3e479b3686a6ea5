"""Cursor pagination: opaque cursors over (created_at, id), stable under inserts."""

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from tollgate_shared.errors import BadRequestError

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next_cursor: str | None = None


class Cursor(BaseModel):
    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps({"t": self.created_at.isoformat(), "i": str(self.id)}).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            parsed = json.loads(raw)
            if not isinstance(parsed["i"], str):  # uuid.UUID(5) is an AttributeError: a 500
                raise TypeError("the cursor's id is not a string")
            return cls(created_at=datetime.fromisoformat(parsed["t"]), id=uuid.UUID(parsed["i"]))
        except (ValueError, KeyError, TypeError) as error:
            raise BadRequestError("The cursor is not one this API returned.") from error


class PageParams(BaseModel):
    limit: int
    cursor: Cursor | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=Cursor.decode(cursor) if cursor else None)


Row = TypeVar("Row")


def split_page(
    rows: Sequence[Row], page: PageParams, position: Callable[[Row], tuple[datetime, uuid.UUID]]
) -> tuple[list[Row], str | None]:
    """The page's rows, from a query that fetched `limit + 1`, and the cursor after its last
    row (None when no row follows). `position` is the row's (time, id) the query orders by."""
    kept = list(rows[: page.limit])
    if len(rows) <= page.limit:
        return kept, None
    at, row_id = position(kept[-1])
    return kept, Cursor(created_at=at, id=row_id).encode()
