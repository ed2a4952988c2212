"""Log lines as text or as JSON, each carrying the trace and span ids of the span current
when it was logged, so that a log line leads to its trace and a trace to its log lines."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def current_trace_ids() -> tuple[str, str] | None:
    """The trace id (32 hex digits) and span id (16) of the current span, None outside any trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


class TraceContextFilter(logging.Filter):
    """Stamps each record with the ids of the span current where it was logged (`trace_id`
    and `span_id`, "" outside any trace), before any handler, queue or thread sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            ids = current_trace_ids()
            record.trace_id, record.span_id = ids if ids is not None else ("", "")
        return True


def _trace_ids(record: logging.LogRecord) -> tuple[str, str] | None:
    """The record's stamped ids, or those of the current span for an unstamped record."""
    if hasattr(record, "trace_id"):
        trace_id, span_id = getattr(record, "trace_id", ""), getattr(record, "span_id", "")
        return (trace_id, span_id) if trace_id else None
    return current_trace_ids()


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [trace=… span=…]`, the ids only inside a trace."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids = _trace_ids(record)
        return line if ids is None else f"{line} [trace={ids[0]} span={ids[1]}]"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, service, and
    trace_id and span_id inside a trace; exception and stack when the record has them."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        ids = _trace_ids(record)
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def make_formatter(log_format: Literal["text", "json"], service: str) -> logging.Formatter:
    return JsonFormatter(service) if log_format == "json" else TextFormatter()


def setup(level: str, log_format: Literal["text", "json"], service: str) -> None:
    """The root logger writes to stderr at `level`, in `log_format`, with trace ids."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format, service))
    handler.addFilter(TraceContextFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
