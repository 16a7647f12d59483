"""Structured logs: JSON lines in production, readable text in development, request ids."""

from __future__ import annotations

import logging

import orjson

from deer.logs import JsonFormatter, TextFormatter, install_request_ids, request_id_var


def make_record(message: str, **extra: object) -> logging.LogRecord:
    install_request_ids()
    logger = logging.getLogger("deer.test")
    return logger.makeRecord("deer.test", logging.INFO, __file__, 1, message, (), None, extra=extra)


def test_json_lines_carry_request_id_and_extras() -> None:
    token = request_id_var.set("req-42")
    try:
        record = make_record("GET /healthz 200", status=200, ms=1.5)
    finally:
        request_id_var.reset(token)
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["msg"] == "GET /healthz 200"
    assert entry["level"] == "info"
    assert entry["logger"] == "deer.test"
    assert entry["request_id"] == "req-42"
    assert entry["status"] == 200
    assert entry["ms"] == 1.5
    assert entry["ts"].endswith("Z")


def test_json_lines_include_the_stack_of_an_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = make_record("failed")
        record.exc_info = sys.exc_info()
    entry = orjson.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exc"]


def test_text_lines_are_readable() -> None:
    record = make_record("deer listening", port=8080)
    line = TextFormatter().format(record)
    assert "INFO" in line
    assert "deer.test: deer listening" in line
    assert "port=8080" in line
    assert "request_id" not in line  # outside a request there is none to show
