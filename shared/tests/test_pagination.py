"""Cursor pagination: a page cut from a query that fetched one row more than the page."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tollgate_shared.errors import BadRequestError
from tollgate_shared.pagination import Cursor, PageParams, split_page

START = datetime(2026, 11, 21, tzinfo=UTC)
ROWS = [(START - timedelta(minutes=n), uuid.uuid4()) for n in range(5)]  # newest first


def test_more_rows_than_the_page_give_a_cursor_after_its_last_row():
    page, cursor = split_page(ROWS[:3], PageParams(limit=2, cursor=None), lambda row: row)
    assert page == ROWS[:2]
    assert cursor is not None
    assert Cursor.decode(cursor) == Cursor(created_at=ROWS[1][0], id=ROWS[1][1])


@pytest.mark.parametrize("fetched", [0, 1, 2])
def test_no_row_beyond_the_page_gives_no_cursor(fetched):
    page, cursor = split_page(ROWS[:fetched], PageParams(limit=2, cursor=None), lambda row: row)
    assert (page, cursor) == (ROWS[:fetched], None)


def test_a_cursor_the_api_did_not_write_is_a_bad_request():
    with pytest.raises(BadRequestError):
        Cursor.decode("not-a-cursor")
