"""The usage spool on its own: order, cursor, restarts, torn lines, slots and the size bound."""

import json

from prometheus_client import REGISTRY

from tollgate_gateway.usage.spool import SpoolPosition, UsageSpool


def line(number: int, size: int = 40) -> bytes:
    body = json.dumps({"id": f"event-{number:05d}", "pad": "x" * size})
    return body.encode() + b"\n"


def read_all(spool: UsageSpool, *, batch: int = 7) -> list[bytes]:
    """Read and commit batch by batch, as the publisher does."""
    lines: list[bytes] = []
    while True:
        read = spool.read_batch(max_events=batch)
        if read.end == spool.committed:
            return lines
        lines += read.lines
        spool.commit(read.end)


def dropped(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "tollgate_gateway_usage_events_dropped_total", {"reason": reason}
    )
    return value or 0.0


def test_lines_come_back_in_order_and_only_once(tmp_path):
    spool = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    written = [line(number) for number in range(50)]
    for event in written:
        assert spool.append(event)
    assert spool.lag_bytes == sum(map(len, written))
    assert read_all(spool) == written
    assert spool.lag_bytes == 0
    assert read_all(spool) == []
    spool.append(line(50))
    assert read_all(spool) == [line(50)]
    spool.close()


def test_an_unacknowledged_batch_is_read_again(tmp_path):
    spool = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    for number in range(5):
        spool.append(line(number))
    first = spool.read_batch(max_events=3)
    again = spool.read_batch(max_events=3)  # no commit in between: a failed publication
    assert first == again
    assert first.lines == [line(0), line(1), line(2)]
    spool.commit(first.end)
    assert spool.read_batch(max_events=10).lines == [line(3), line(4)]
    spool.close()


def test_a_restart_resumes_after_the_last_commit(tmp_path):
    spool = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    for number in range(10):
        spool.append(line(number))
    spool.commit(spool.read_batch(max_events=4).end)
    spool.close()  # like a crash: nothing flushed, nothing published beyond the commit

    reopened = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    assert reopened.directory == spool.directory  # the slot is free again
    reopened.append(line(10))  # goes to a new segment, after the old ones
    assert read_all(reopened) == [line(number) for number in range(4, 11)]
    assert len(list(reopened.directory.glob("*.jsonl"))) == 1  # finished segments deleted
    reopened.close()


def test_segments_rotate_and_are_deleted_once_acknowledged(tmp_path):
    spool = UsageSpool.open(tmp_path, max_bytes=1 << 20, segment_bytes=500)
    written = [line(number) for number in range(60)]
    for event in written:
        spool.append(event)
    segments = sorted(spool.directory.glob("*.jsonl"))
    assert len(segments) > 5
    assert all(path.stat().st_size < 500 + len(written[0]) for path in segments)
    assert read_all(spool, batch=13) == written
    assert len(list(spool.directory.glob("*.jsonl"))) == 1  # the active segment stays
    spool.close()


def test_a_torn_line_is_skipped_and_what_follows_is_kept(tmp_path):
    spool = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    spool.append(line(0))
    directory = spool.directory
    spool.close()
    # A crash in the middle of a write (power loss): the segment ends without a newline.
    [segment] = directory.glob("*.jsonl")
    with segment.open("ab") as file:
        file.write(line(1)[:20])
    before = dropped("unreadable")

    reopened = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    reopened.append(line(2))
    assert read_all(reopened) == [line(0), line(2)]
    assert dropped("unreadable") == before + 1
    reopened.close()


def test_an_unreadable_cursor_replays_the_spool(tmp_path):
    spool = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    for number in range(3):
        spool.append(line(number))
    spool.commit(spool.read_batch(max_events=2).end)
    directory = spool.directory
    spool.close()
    (directory / "cursor.json").write_text("{not json")

    reopened = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    assert reopened.committed == SpoolPosition(1, 0)
    # Lines already published come again; JetStream drops them by Nats-Msg-Id.
    assert read_all(reopened) == [line(0), line(1), line(2)]
    reopened.close()


def test_processes_sharing_a_folder_take_separate_slots(tmp_path):
    first = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    second = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    assert first.directory != second.directory
    first.append(line(1))
    second.append(line(2))
    assert read_all(first) == [line(1)]
    assert read_all(second) == [line(2)]
    first.close()
    third = UsageSpool.open(tmp_path, max_bytes=1 << 20)
    assert third.directory == first.directory
    second.close()
    third.close()


def test_a_full_spool_drops_new_events_and_recovers_once_published(tmp_path):
    size = len(line(0))
    spool = UsageSpool.open(tmp_path, max_bytes=10 * size, segment_bytes=3 * size)
    before = dropped("spool_full")
    accepted = [spool.append(line(number)) for number in range(15)]
    assert accepted == [True] * 10 + [False] * 5
    assert dropped("spool_full") == before + 5
    assert spool.lag_bytes == 10 * size
    assert spool.total_bytes <= 10 * size

    assert read_all(spool) == [line(number) for number in range(10)]  # published: room again
    assert spool.append(line(15))
    assert spool.total_bytes <= 10 * size + 3 * size  # the bound plus one segment at most
    assert read_all(spool) == [line(15)]
    spool.close()
