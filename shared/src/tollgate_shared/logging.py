"""structlog setup: JSON in production, pretty in a terminal, secrets never logged."""

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Field names whose values are never written to a log, whatever their nesting.
SECRET_FIELDS = frozenset(
    {
        "password",
        "new_password",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "api_key",
        "key",
        "secret",
        "identity_token",
        "x-api-key",
        "x-tollgate-identity",
        "card",
        "card_number",
        "cvc",
    }
)
REDACTED = "[redacted]"
KEY_PREFIXES = ("tg_live_", "tg_test_")


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name, value in event_dict.items():
        # Plain values are the common case (every access line): checked inline, no call.
        if name.lower() in SECRET_FIELDS:
            event_dict[name] = REDACTED
        elif type(value) is str:
            if value.startswith(KEY_PREFIXES):
                event_dict[name] = value[:12] + "…" + REDACTED
        elif isinstance(value, dict):
            event_dict[name] = _redact(name, value)
    return event_dict


def _redact(name: str, value: Any) -> Any:
    if name.lower() in SECRET_FIELDS:
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact(str(k), v) for k, v in value.items()}
    if isinstance(value, str) and value.startswith(KEY_PREFIXES):
        return value[:12] + "…" + REDACTED
    return value


class _StderrLogger(structlog.PrintLogger):
    """Writes to the sys.stderr of the moment (test capture, daemons replace it), so a logger
    bound once stays right."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def _current_stderr_logger(*_args: Any) -> structlog.PrintLogger:
    return _StderrLogger()


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """A StreamHandler that always writes to the sys.stderr of the moment."""

    @property  # type: ignore[override,unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(
    *, service: str, log_format: str = "auto", level: str = "INFO", cache_loggers: bool = False
) -> None:
    """Configure structlog and the standard library (uvicorn, sqlalchemy) to one output.

    cache_loggers: each module logger binds once, on first use, instead of on every call
    (~20 µs a line). Only for processes that configure logging once: loggers then ignore any
    later configure(), structlog's capture_logs() in tests included."""
    render_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())

    def add_service(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if render_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_current_stderr_logger,
        cache_logger_on_first_use=cache_loggers,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = _CurrentStderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log duplicates our request log line.
    logging.getLogger("uvicorn.access").disabled = True
    # One line per outgoing call is noise next to our own request log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
