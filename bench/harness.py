"""What every benchmark script needs around its measurements: progress lines on stderr, and a
clean-up that stops every process the script started, whatever ends it."""

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def cleanup_on_exit() -> Iterator[contextlib.ExitStack]:
    """An ExitStack for the processes a script starts. SIGTERM unwinds like Ctrl-C; once the
    unwinding has begun, neither interrupts it (each stop has its own timeouts), so a signal that
    arrives during the clean-up cannot leave processes running."""
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.ExitStack() as cleanup:
        try:
            yield cleanup
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _interrupt(_signal: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
