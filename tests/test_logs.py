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


def _through_the_writer(json_lines: bool) -> list[str]:
    import io

    from deer.logs import log_access, setup_logging, stop_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    setup_logging("INFO", json_lines, stream)
    try:
        token = request_id_var.set("rid-7")
        try:
            log_access("GET", "/api/meta", 200, 1.25, "/api/meta")
            logging.getLogger("deer.test").warning("disk %s", "full", extra={"free": 0})
        finally:
            request_id_var.reset(token)
    finally:
        stop_logging()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    return stream.getvalue().splitlines()


def test_the_writer_thread_writes_access_and_other_lines_as_json() -> None:
    access, warning = (orjson.loads(line) for line in _through_the_writer(json_lines=True))
    assert access["msg"] == "GET /api/meta 200 1.2ms"
    assert access["logger"] == "deer.access"
    assert access["request_id"] == "rid-7"
    assert (access["status"], access["route"], access["ms"]) == (200, "/api/meta", 1.25)
    assert access["ts"].endswith("Z")
    assert warning["msg"] == "disk full"
    assert warning["level"] == "warning"
    assert warning["free"] == 0
    assert warning["request_id"] == "rid-7"


def test_the_writer_thread_writes_readable_text() -> None:
    access, warning = _through_the_writer(json_lines=False)
    assert "INFO    deer.access: GET /api/meta 200 1.2ms" in access
    assert "request_id=rid-7" in access and "route=/api/meta" in access
    assert "WARNING deer.test: disk full" in warning and "free=0" in warning
