"""Log lines as JSON or text, with the trace and span ids of a real (SDK) span."""

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from alerting.common.logs import JsonFormatter, TextFormatter, TraceContextFilter, make_formatter


def record(message: str, *args: object, exc_info: Any = None) -> logging.LogRecord:
    entry = logging.LogRecord("alerting.test", logging.WARNING, __file__, 1, message, args, exc_info)
    entry.created = 1_700_000_000.123456  # 2023-11-14T22:13:20.123Z
    return entry


def test_a_json_line_outside_any_trace_has_the_fields_and_no_ids() -> None:
    line = JsonFormatter("aggregator").format(record("republished %d notifications", 3))
    assert json.loads(line) == {
        "time": "2023-11-14T22:13:20.123Z",
        "level": "WARNING",
        "logger": "alerting.test",
        "message": "republished 3 notifications",
        "service": "aggregator",
    }
    assert "\n" not in line


def test_a_json_line_carries_the_exception() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        entry = record("failed", exc_info=sys.exc_info())
    parsed = json.loads(JsonFormatter("sender").format(entry))
    assert parsed["message"] == "failed"
    assert parsed["exception"].startswith("Traceback (most recent call last):")
    assert parsed["exception"].endswith("ValueError: bad\nvalue")


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    """A logger writing JSON to one buffer and text to another, as setup_logging wires them."""
    logger = logging.getLogger("alerting.test.logs")
    json_out, text_out = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(json_out), logging.StreamHandler(text_out)]
    handlers[0].setFormatter(make_formatter("json", "evaluator"))
    handlers[1].setFormatter(make_formatter("text", "evaluator"))
    for handler in handlers:
        handler.addFilter(TraceContextFilter())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, json_out, text_out
    for handler in handlers:
        logger.removeHandler(handler)
    logger.propagate = True


def test_lines_logged_inside_a_span_carry_its_trace_and_span_ids(
    captured: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    logger, json_out, text_out = captured
    tracer = TracerProvider().get_tracer("logs-test")
    with tracer.start_as_current_span("outer") as outer:
        logger.info("in the outer span")
        with tracer.start_as_current_span("inner") as inner:
            logger.info("in the inner span")
    logger.info("after the trace")

    trace_id = trace.format_trace_id(outer.get_span_context().trace_id)
    outer_id = trace.format_span_id(outer.get_span_context().span_id)
    inner_id = trace.format_span_id(inner.get_span_context().span_id)
    assert inner.get_span_context().trace_id == outer.get_span_context().trace_id
    assert len(trace_id) == 32 and len(outer_id) == 16 and outer_id != inner_id

    lines = [json.loads(line) for line in json_out.getvalue().splitlines()]
    assert [(line["message"], line.get("trace_id"), line.get("span_id"), line["service"]) for line in lines] == [
        ("in the outer span", trace_id, outer_id, "evaluator"),
        ("in the inner span", trace_id, inner_id, "evaluator"),
        ("after the trace", None, None, "evaluator"),
    ]
    text = text_out.getvalue().splitlines()
    assert text[0].endswith(f" INFO alerting.test.logs: in the outer span [trace={trace_id} span={outer_id}]")
    assert text[1].endswith(f" INFO alerting.test.logs: in the inner span [trace={trace_id} span={inner_id}]")
    assert text[2].endswith(" INFO alerting.test.logs: after the trace")


def test_text_lines_put_the_ids_before_a_traceback() -> None:
    tracer = TracerProvider().get_tracer("logs-test")
    with tracer.start_as_current_span("failing") as span:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            entry = record("it failed", exc_info=sys.exc_info())
        TraceContextFilter().filter(entry)
    # Formatted after the span ended: the ids stamped where it was logged still apply.
    first, *rest = TextFormatter().format(entry).splitlines()
    ids = span.get_span_context()
    assert first.endswith(
        f"it failed [trace={trace.format_trace_id(ids.trace_id)} span={trace.format_span_id(ids.span_id)}]")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "RuntimeError: boom"
