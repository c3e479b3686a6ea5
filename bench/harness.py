"""What every benchmark script needs around its measurements: progress lines on stderr, and
SIGTERM unwinding like Ctrl-C, so the processes a script started are stopped on the way out."""

import signal
import sys
from types import FrameType


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def stop_on_sigterm() -> None:
    def stop(_signal: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
