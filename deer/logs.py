"""Structured logging: JSON lines in production, readable lines in development.

Every record carries the request id of the request being handled, if any.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import queue
import sys
import threading
import time
from typing import Any, Final, NamedTuple, TextIO

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "deer_request_id", default=None
)

_STANDARD: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


_base_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id_var.get()
    return record


def install_request_ids() -> None:
    """Give every log record the id of the request being handled (idempotent)."""
    logging.setLogRecordFactory(_record_with_request_id)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update((k, v) for k, v in _extras(record).items() if v is not None)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items() if v is not None)
        if extras:
            first, sep, rest = line.partition("\n")
            line = f"{first}  [{extras}]{sep}{rest}"
        return line


class AccessEntry(NamedTuple):
    """One access-log line, formatted in the writer thread (a LogRecord costs ~20 µs)."""

    created: float
    method: str
    path: str
    status: int
    ms: float
    route: str
    request_id: str | None


access_logger: Final = logging.getLogger("deer.access")


def log_access(method: str, path: str, status: int, ms: float, route: str) -> None:
    """Write the access line of a request, if the `deer.access` logger is at INFO."""
    writer = _writer
    if writer is None:  # logging not set up by run.py (tests): plain records, caplog sees them
        access_logger.info(
            "%s %s %d %.1fms",
            method,
            path,
            status,
            ms,
            extra={"status": status, "route": route, "ms": ms},
        )
        return
    writer.records.put(
        AccessEntry(time.time(), method, path, status, ms, route, request_id_var.get())
    )


def _format_access(entry: AccessEntry, json_lines: bool) -> str:
    message = f"{entry.method} {entry.path} {entry.status} {entry.ms:.1f}ms"
    if json_lines:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(entry.created))
        millis = int(entry.created * 1000) % 1000
        return orjson.dumps(
            {
                "ts": f"{stamp}.{millis:03d}Z",
                "level": "info",
                "logger": "deer.access",
                "msg": message,
                "request_id": entry.request_id,
                "status": entry.status,
                "route": entry.route,
                "ms": entry.ms,
            }
        ).decode()
    stamp = time.strftime("%H:%M:%S", time.localtime(entry.created))
    return (
        f"{stamp} INFO    deer.access: {message}  [request_id={entry.request_id} "
        f"status={entry.status} route={entry.route} ms={entry.ms}]"
    )


class _Enqueue(logging.Handler):
    """The event loop's only logging work: put the record on a queue (no lock, no I/O)."""

    def __init__(self, records: queue.SimpleQueue[Queued]) -> None:
        super().__init__()
        self.records = records

    def handle(self, record: logging.LogRecord) -> bool:
        self.records.put(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does it
        self.records.put(record)


Queued = logging.LogRecord | AccessEntry | None  # None stops the writer


class LogWriter(threading.Thread):
    """Formats records and writes them in batches: one write per burst, not per line."""

    BATCH = 512

    def __init__(self, json_lines: bool, stream: TextIO) -> None:
        super().__init__(name="deer-log-writer", daemon=True)
        self.json_lines = json_lines
        self.formatter: logging.Formatter = JsonFormatter() if json_lines else TextFormatter()
        self.stream = stream
        self.records: queue.SimpleQueue[Queued] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            first = self.records.get()
            batch = [first]
            while len(batch) < self.BATCH:
                try:
                    batch.append(self.records.get_nowait())
                except queue.Empty:
                    break
            lines = [self._format(record) for record in batch if record is not None]
            if lines:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            if None in batch:
                return

    def _format(self, record: logging.LogRecord | AccessEntry) -> str:
        if isinstance(record, AccessEntry):
            return _format_access(record, self.json_lines)
        try:
            return self.formatter.format(record)
        except Exception as exc:  # a bad log call must not kill the writer
            return f"(unformattable log record from {record.name}: {exc!r})"

    def stop(self) -> None:
        self.records.put(None)
        self.join(timeout=5)


_writer: LogWriter | None = None


def setup_logging(level: str, json_lines: bool, stream: TextIO | None = None) -> None:
    """Log to stderr from a thread of its own, so writing never blocks the event loop."""
    global _writer
    # The logging HOWTO's "Optimization": skip what every record would otherwise look up
    # (caller frame, thread, process) and deer's logs do not show.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if _writer is not None:
        _writer.stop()
    _writer = LogWriter(json_lines, stream or sys.stderr)
    _writer.start()
    atexit.register(stop_logging)
    install_request_ids()
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(_writer.records)]
    root.setLevel(level)
    for noisy in ("tortoise", "asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def stop_logging() -> None:
    """Write out what is queued and stop the writer thread (run.py does this at exit)."""
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None
    logging.getLogger().handlers[:] = [logging.StreamHandler(sys.stderr)]
