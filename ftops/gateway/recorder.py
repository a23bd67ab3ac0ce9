"""Call logging off the request path: an in-memory buffer, a writer thread, a spool on disk.

The request handler only appends a record to a deque (no lock, no I/O). A daemon thread
takes up to ``FTOPS_GATEWAY_BATCH`` records every ``FTOPS_GATEWAY_FLUSH_MS`` (sooner when
the buffer fills) and stores them with ``services.gateway_calls_store``; a thread rather
than an asyncio task because the ORM is synchronous and a slow database must not stall the
event loop.

When the database is unreachable the batch is appended to a spool file under
``FTOPS_GATEWAY_SPOOL_DIR`` (JSON lines, mode 0600: it holds calls before PII redaction, so
only the gateway's user may read it, and only until it is replayed). Every later tick first
tries the spool, oldest file first, and deletes a file once all of it is stored. Ingest is
idempotent by interaction id, so a file replayed twice (a crash between storing and
deleting) stores nothing twice. On shutdown the buffer is flushed, or spooled if that fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson
from django.db import DatabaseError, close_old_connections, connection

from ftops.gateway import metrics
from ftops.gateway.services import Record, gateway_calls_store

logger = logging.getLogger(__name__)

# Errors that mean "the database is not there right now": spool and try again. Anything
# else is a bug in a record; it is spooled too (never lost) and logged with its traceback.
TRANSIENT = (DatabaseError, OSError)


class CallRecorder:
    def __init__(self, *, spool_dir: Path, flush_s: float, batch: int) -> None:
        self.spool_dir = spool_dir
        self.flush_s = flush_s
        self.batch = batch
        self._buffer: deque[Record] = deque()
        self._wake = threading.Event()
        self._flushing = threading.Lock()  # one pass at a time (the thread's, or a caller's wait for it)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._spool_failing_since: float | None = None
        self.stored = 0  # calls stored for the first time by this process (tests and the bench read it)
        self.spooled = 0  # records written to the spool by this process
        self.last_error = ""

    # --- request side (event loop) ---------------------------------------------------------

    def add(self, record: Record) -> None:
        self._buffer.append(record)
        if len(self._buffer) >= self.batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def spooled_files(self) -> list[Path]:
        if not self.spool_dir.is_dir():
            return []
        return sorted(self.spool_dir.glob("*.jsonl"))

    # --- writer thread ---------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gateway-call-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.flush_s)
                self._wake.clear()
                try:
                    self.flush_once()
                except Exception:  # the writer must outlive any one bad tick
                    logger.exception("gateway call log: flush failed")
            self.flush_once(final=True)
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def _take(self) -> list[Record]:
        taken: list[Record] = []
        while self._buffer and len(taken) < self.batch:
            taken.append(self._buffer.popleft())
        return taken

    def flush_once(self, *, final: bool = False) -> None:
        """Replay the spool, then store what is buffered; one pass (the thread calls it in a loop).

        Calling it from elsewhere also waits for a pass in progress, so afterwards everything
        added before the call is stored or spooled."""
        with self._flushing:
            self._flush(final=final)

    def _flush(self, *, final: bool) -> None:
        close_old_connections()
        database_ok = self._replay_spool()
        while True:
            records = self._take()
            if not records:
                break
            if database_ok:
                database_ok = self._store(records)
            if not database_ok:
                try:
                    self._spool(records)
                except OSError:
                    # Neither the database nor the disk: keep the records in memory for the next tick.
                    logger.exception("gateway call log: cannot spool to %s", self.spool_dir)
                    self._buffer.extendleft(reversed(records))
                    break
            if not final and len(self._buffer) < self.batch:
                break
        metrics.LOG_PENDING.set(len(self._buffer))
        metrics.SPOOL_FILES.set(len(self.spooled_files()))

    def _store(self, records: list[Record]) -> bool:
        try:
            stored = gateway_calls_store(records=records)
        except TRANSIENT as exc:
            self._database_down(exc)
            return False
        except Exception:
            # Not the database being away but records the store cannot take (a bug): put them
            # aside as .rejected (never replayed on their own, so they cannot block the log;
            # rename to .jsonl to retry after a fix) and carry on.
            logger.exception("gateway could not store %s call records; kept in a .rejected spool file", len(records))
            self._spool(records, suffix=".rejected")
            return True
        self.stored += stored
        metrics.LOGGED.inc(stored)
        return True

    def _database_down(self, exc: Exception) -> None:
        if not self.last_error:
            logger.warning("gateway call log: database unreachable (%s); spooling to %s", exc, self.spool_dir)
        self.last_error = f"{type(exc).__name__}: {exc}"
        # A connection the server dropped stays broken until closed; the next tick reconnects.
        with contextlib.suppress(Exception):
            connection.close()

    def _spool(self, records: list[Record], *, suffix: str = ".jsonl") -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        path = self.spool_dir / f"{int(time.time() * 1000):015d}-{os.getpid()}-{self._seq:06d}{suffix}"
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if suffix == ".jsonl":
            self.spooled += len(records)
            metrics.SPOOLED.inc(len(records))

    def _replay_spool(self) -> bool:
        """Store spooled files oldest first; False while the database is still unreachable."""
        for path in self.spooled_files():
            try:
                records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
            except (OSError, orjson.JSONDecodeError):
                logger.exception("unreadable gateway spool file %s; moved aside", path)
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".bad"))
                continue
            for start in range(0, len(records), self.batch):
                if not self._store(records[start:start + self.batch]):
                    if start:  # keep only what is left, so a retry does not resend the stored part
                        self._rewrite(path, records[start:])
                    return False
            path.unlink(missing_ok=True)
            if self.last_error:
                logger.info("gateway call log: database back; replayed %s", path.name)
                self.last_error = ""
        return True

    @staticmethod
    def _rewrite(path: Path, records: list[Record]) -> None:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
        os.replace(tmp, path)


def record_summary(recorder: CallRecorder) -> dict[str, Any]:
    return {"pending": recorder.pending, "spooled_files": len(recorder.spooled_files()), "stored": recorder.stored,
            "last_error": recorder.last_error}
