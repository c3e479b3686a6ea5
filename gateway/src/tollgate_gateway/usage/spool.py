"""The usage spool: a local write-ahead log between the answered request and JetStream.

Each event is one JSON line written with a single `os.write` on an `O_APPEND` descriptor, before
the message that completes the response is handed to the server (see middleware.py). The write
lands in the operating system's page cache, so a process killed with SIGKILL loses no event of
an answered request; only a power loss or kernel crash can lose what the kernel had not yet
written back (no fsync: it would cost a disk flush per request). The publisher reads the lines
in order and moves the cursor only after JetStream acknowledged them (ADR 0009).

Layout, one slot per running process (replicas sharing a folder each lock their own):

    <directory>/<slot>/lock                  flock held by the process that owns the slot
    <directory>/<slot>/cursor.json           {"segment": n, "offset": bytes}: all before it is acked
    <directory>/<slot>/<segment>.jsonl       appended in order; a new one per start and per size
"""

import asyncio
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from tollgate_gateway.usage.metrics import DROPPED, SPOOLED

logger = structlog.get_logger(__name__)

MAX_SLOTS = 1024
SEGMENT_SUFFIX = ".jsonl"
CURSOR_FILE = "cursor.json"


@dataclass(frozen=True, order=True)
class SpoolPosition:
    segment: int
    offset: int


@dataclass(frozen=True)
class SpoolBatch:
    """Lines read from the committed position on, and where the next read would start."""

    lines: list[bytes]
    end: SpoolPosition


def default_segment_bytes(max_bytes: int) -> int:
    # Small enough that acknowledged segments are deleted soon and count little against the
    # bound, large enough that rotation is rare.
    return max(64 * 1024, min(16 * 1024 * 1024, max_bytes // 8))


class UsageSpool:
    def __init__(
        self, slot_directory: Path, lock_fd: int, *, max_bytes: int, segment_bytes: int
    ) -> None:
        self.directory = slot_directory
        self.max_bytes, self.segment_bytes = max_bytes, segment_bytes
        # Rung on every append, so the publisher wakes at once instead of polling.
        self.appended = asyncio.Event()
        self._lock_fd = lock_fd
        self._dropping, self._dropped_in_a_row = False, 0
        self._sizes: dict[int, int] = {
            int(path.stem): path.stat().st_size
            for path in slot_directory.glob("*" + SEGMENT_SUFFIX)
            if path.stem.isdigit()
        }
        cursor = self._load_cursor()
        for segment in [segment for segment in self._sizes if segment < cursor.segment]:
            self._delete_segment(segment)
        # Always a fresh segment: an earlier life may have left a torn last line in its own.
        self._active = max([*self._sizes, cursor.segment]) + 1
        self._fd = self._open_segment(self._active)
        self._sizes[self._active] = 0
        if cursor.segment not in self._sizes:
            cursor = SpoolPosition(min(self._sizes), 0)
        self._committed = cursor

    @classmethod
    def open(
        cls, directory: Path, *, max_bytes: int, segment_bytes: int | None = None
    ) -> "UsageSpool":
        """Take the first free slot under directory (created if missing)."""
        directory.mkdir(parents=True, exist_ok=True)
        for slot in range(MAX_SLOTS):
            spool = cls.take(
                directory / str(slot), max_bytes=max_bytes, segment_bytes=segment_bytes
            )
            if spool is not None:
                return spool
        raise RuntimeError(f"all {MAX_SLOTS} usage spool slots under {directory} are in use")

    @classmethod
    def take(
        cls, slot_directory: Path, *, max_bytes: int, segment_bytes: int | None = None
    ) -> "UsageSpool | None":
        """The spool of one slot, or None while another process holds it."""
        slot_directory.mkdir(exist_ok=True)
        lock_fd = os.open(slot_directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # Released by the kernel when the process dies, even by SIGKILL.
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            return None
        try:
            return cls(
                slot_directory,
                lock_fd,
                max_bytes=max_bytes,
                segment_bytes=segment_bytes or default_segment_bytes(max_bytes),
            )
        except BaseException:
            os.close(lock_fd)
            raise

    @property
    def committed(self) -> SpoolPosition:
        return self._committed

    @property
    def total_bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def lag_bytes(self) -> int:
        """Bytes not yet acknowledged by JetStream (segments before the cursor are deleted)."""
        return max(0, self.total_bytes - self._committed.offset)

    # --- writing (the request path) ------------------------------------------------------

    def append(self, line: bytes) -> bool:
        """Write one newline-terminated event; False when it was dropped (full, write error).

        The bound is on events not yet acknowledged; acknowledged ones wait on disk only until
        their segment is left behind, so the folder holds at most max_bytes plus one segment.
        """
        if self.lag_bytes + len(line) > self.max_bytes:
            self._drop("spool_full")
            return False
        try:
            if self._sizes[self._active] >= self.segment_bytes:
                self._rotate()
            written = os.write(self._fd, line)
        except OSError as error:
            self._drop("write_error", error=repr(error))
            return False
        self._sizes[self._active] += written
        if written != len(line):
            # A torn line (disk full mid-write): close the segment so it stays its skipped tail.
            self._rotate_quietly()
            self._drop("write_error", error="short write")
            return False
        SPOOLED.inc()
        if self._dropping:
            logger.warning("usage spool accepts events again", dropped=self._dropped_in_a_row)
            self._dropping, self._dropped_in_a_row = False, 0
        self.appended.set()
        return True

    def _drop(self, reason: str, **details: str) -> None:
        DROPPED.labels(reason).inc()
        self._dropped_in_a_row += 1
        if not self._dropping:  # once per episode, not once per request
            self._dropping = True
            logger.error(
                "usage events are being dropped",
                reason=reason,
                spool_bytes=self.total_bytes,
                max_bytes=self.max_bytes,
                **details,
            )

    def _rotate(self) -> None:
        fd = self._open_segment(self._active + 1)
        os.close(self._fd)
        self._fd, self._active = fd, self._active + 1
        self._sizes[self._active] = 0

    def _rotate_quietly(self) -> None:
        try:
            self._rotate()
        except OSError:
            logger.exception("usage spool cannot start a new segment")

    def _open_segment(self, segment: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        return os.open(self._segment_path(segment), flags, 0o600)

    # --- reading and committing (the publisher) ------------------------------------------

    def read_batch(self, *, max_events: int, max_bytes: int = 1024 * 1024) -> SpoolBatch:
        """Complete lines from the committed position on, in order, across segments."""
        position, lines = self._committed, list[bytes]()
        while len(lines) < max_events:
            data = self._read(position, max_bytes)
            complete = data[: data.rfind(b"\n") + 1]
            for line in complete.split(b"\n")[:-1]:
                if len(lines) == max_events:
                    break
                lines.append(line + b"\n")
                position = SpoolPosition(position.segment, position.offset + len(line) + 1)
            if len(lines) == max_events or position.segment == self._active:
                break  # the active segment may still grow: its partial line waits
            if complete:
                continue  # a closed segment with more to read
            if data:
                # A closed segment ending without a newline: a write torn by a crash.
                DROPPED.labels("unreadable").inc()
                logger.error("torn usage line skipped", segment=position.segment, bytes=len(data))
            position = SpoolPosition(min(s for s in self._sizes if s > position.segment), 0)
        return SpoolBatch(lines, position)

    def commit(self, position: SpoolPosition) -> None:
        """Everything before position is in JetStream: remember that and delete what is done."""
        self._committed = position
        temporary = self.directory / (CURSOR_FILE + ".tmp")
        temporary.write_text(json.dumps({"segment": position.segment, "offset": position.offset}))
        # Atomic: a crash leaves the old cursor or the new one, and the old one only costs
        # re-publishing what JetStream then drops as duplicates.
        os.replace(temporary, self.directory / CURSOR_FILE)
        for segment in [segment for segment in self._sizes if segment < position.segment]:
            self._delete_segment(segment)

    def close(self) -> None:
        os.close(self._fd)
        os.close(self._lock_fd)  # releases the slot

    def _read(self, position: SpoolPosition, max_bytes: int) -> bytes:
        try:
            fd = os.open(self._segment_path(position.segment), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return b""
        try:
            return os.pread(fd, max_bytes, position.offset)
        finally:
            os.close(fd)

    def _load_cursor(self) -> SpoolPosition:
        try:
            saved = json.loads((self.directory / CURSOR_FILE).read_text())
            return SpoolPosition(int(saved["segment"]), int(saved["offset"]))
        except FileNotFoundError:
            return SpoolPosition(0, 0)
        except (ValueError, KeyError, TypeError):
            # From the oldest segment on: JetStream drops what it already has.
            logger.warning("usage spool cursor unreadable; replaying the spool")
            return SpoolPosition(0, 0)

    def _delete_segment(self, segment: int) -> None:
        self._segment_path(segment).unlink(missing_ok=True)
        self._sizes.pop(segment, None)

    def _segment_path(self, segment: int) -> Path:
        return self.directory / f"{segment:020d}{SEGMENT_SUFFIX}"
