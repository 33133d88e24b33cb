"""The run history: an SQLite index over results/<device>/<run-id>/run.json.

The JSON files stay the source of truth; this index makes "every nightly run of
int8 on pi4" one query, and `edgebench history rebuild` re-creates it from the
files. Two runs finishing at once each write in their own transaction, with
WAL journaling and a busy timeout, so neither corrupts nor loses the other.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from edgebench.core.errors import EdgebenchError
from edgebench.results.layout import run_folders
from edgebench.results.record import RunRecord
from edgebench.results.store import ResultsError, close_if_abandoned, latency, load_run

INDEX_SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    folder TEXT NOT NULL,
    device TEXT NOT NULL,
    model TEXT NOT NULL,
    model_sha256 TEXT,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    edgebench_version TEXT,
    runtime TEXT,
    runtime_version TEXT,
    threads INTEGER,
    emulated INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS variants (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    variant TEXT NOT NULL,
    status TEXT NOT NULL,
    rounds INTEGER NOT NULL,
    size_bytes INTEGER,
    p50_us REAL,
    p90_us REAL,
    mean_us REAL,
    cv REAL,
    peak_rss_bytes INTEGER,
    top1 REAL,
    evaluated INTEGER,
    error TEXT,
    PRIMARY KEY (run_id, variant)
);
CREATE INDEX IF NOT EXISTS runs_by_device_model ON runs(device, model, started_at);
"""


class HistoryError(EdgebenchError):
    """The history index cannot be opened or is of an unknown version."""


@dataclass(frozen=True)
class HistoryRow:
    run_id: str
    started_at: str
    device: str
    model: str
    variant: str
    status: str
    runtime: str | None
    threads: int | None
    p50_us: float | None
    peak_rss_bytes: int | None
    top1: float | None
    folder: str


def default_history_path(results_dir: Path) -> Path:
    return Path(os.environ.get("EDGEBENCH_HISTORY", Path(results_dir) / "history.sqlite"))


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except (OSError, sqlite3.Error) as error:
        raise HistoryError(f"cannot open the history index {path}: {error}") from None
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Why a file lock: switching a new index to WAL needs an exclusive lock, and SQLite can answer
        # "database is locked" to that switch at once instead of waiting out the busy timeout, so two
        # runs finishing together on a fresh index failed (seen on a loaded CI machine). Setting up
        # one connection at a time makes that race impossible; transactions after it queue on the
        # busy timeout as before.
        try:
            with FileLock(f"{path}.lock", timeout=BUSY_TIMEOUT_MS / 1000):
                _set_up(connection, path)
        except Timeout:
            raise HistoryError(
                f"the history index {path} stayed locked by another edgebench for {BUSY_TIMEOUT_MS // 1000} s"
            ) from None
        yield connection
    except sqlite3.DatabaseError as error:
        raise HistoryError(
            f"the history index {path} is unreadable ({error}): run 'edgebench history rebuild'"
        ) from None
    finally:
        connection.close()


def _set_up(connection: sqlite3.Connection, path: Path) -> None:
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "meta" not in tables:
        raise HistoryError(
            f"{path} is not an edgebench history index (it has tables {', '.join(sorted(tables))}): "
            "run 'edgebench history rebuild' to move it aside and re-create the index"
        )
    connection.execute("PRAGMA journal_mode = WAL")  # a no-op, without a lock, on an index already in WAL
    connection.execute("PRAGMA foreign_keys = ON")
    with _transaction(connection):
        for statement in filter(str.strip, _SCHEMA.split(";")):
            connection.execute(statement)
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(INDEX_SCHEMA_VERSION),))
        elif row[0] != str(INDEX_SCHEMA_VERSION):
            raise HistoryError(
                f"{path} is history index version {row[0]}, this edgebench reads {INDEX_SCHEMA_VERSION}: "
                "run 'edgebench history rebuild' to re-create it from the run folders"
            )


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the
    # busy timeout instead of one failing half-way.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def index_run(path: Path, folder: Path, loaded: tuple[RunRecord, list] | None = None) -> None:
    """Add (or replace) one run folder in the index; `loaded` spares reading back what the caller holds."""
    with connect(path) as connection, _transaction(connection):
        _insert(connection, Path(folder), loaded)


def index_problem(path: Path) -> str | None:
    """Why the index file at `path` cannot be used as it is (None: absent or healthy)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            if connection.execute("PRAGMA quick_check").fetchone() != ("ok",):
                return "it failed SQLite's integrity check"
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:
                return f"it is not an edgebench history index (tables: {', '.join(sorted(tables))})"
            if "meta" in tables:
                row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None or row[0] != str(INDEX_SCHEMA_VERSION):
                    found = row[0] if row else "unknown"
                    return f"it is index version {found}, this edgebench writes {INDEX_SCHEMA_VERSION}"
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        return f"it is unreadable ({error})"
    return None


def move_aside(path: Path) -> Path:
    """Rename a bad index (and its WAL and shared-memory files, which belong to it) out of the way."""
    path = Path(path)
    target = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    for suffix in ("", "-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.replace(side, f"{target}{suffix}")
    return target


def rebuild(path: Path, results_dir: Path) -> tuple[int, list[str], str | None]:
    """Re-create the index from every run.json under results_dir, whatever state the index file is in.

    Returns (runs indexed, skipped folders, what happened to a bad index file or None)."""
    folder = Path(path).parent
    if not os.access(folder if folder.exists() else folder.parent, os.W_OK):
        raise HistoryError(f"cannot rebuild the history index {path}: {folder} is not writable (read-only disk or "
                           "permissions); 'edgebench history' reads an index there without writing")  # fmt: skip
    problem = index_problem(path)
    moved = f"{path} was moved aside to {move_aside(path)}: {problem}" if problem else None
    skipped = []
    count = 0
    with connect(path) as connection, _transaction(connection):
        connection.execute("DELETE FROM variants")
        connection.execute("DELETE FROM runs")
        for folder in run_folders(results_dir):
            try:
                close_if_abandoned(folder)  # a run a killed controller left "running" is indexed as interrupted
                _insert(connection, folder)
                count += 1
            except (ResultsError, KeyError, ValueError, OSError) as error:
                skipped.append(f"{folder}: {error}")
    return count, skipped, moved


def _insert(connection: sqlite3.Connection, folder: Path, loaded: tuple[RunRecord, list] | None = None) -> None:
    from edgebench.compare.run_summary import summarize

    record, measurements = loaded or load_run(folder)
    view = summarize(record, measurements)
    documents = [m.document for m in measurements if m.status == "ok" and m.document]
    runtime = documents[0]["environment"]["runtime"] if documents else {}
    connection.execute("DELETE FROM runs WHERE run_id = ?", (record.run_id,))
    connection.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.run_id, str(Path(folder).resolve()), record.device_name, record.model_name, record.model_sha256,
            record.status, record.started_at, record.edgebench_version, runtime.get("name"), runtime.get("version"),
            record.settings.get("threads"), int(record.emulated),
        ),
    )  # fmt: skip
    for variant in view.variants:
        ok = [m for m in measurements if m.variant == variant.name and m.status == "ok"]
        figure = latency([m.document for m in ok])
        stats = ok[0].document["timing"]["stats"] if ok else {}
        connection.execute(
            "INSERT INTO variants VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.run_id, variant.name, variant.status, variant.rounds, variant.size_bytes,
                variant.p50_ms * 1000 if variant.p50_ms is not None else None,
                variant.p90_ms * 1000 if variant.p90_ms is not None else None,
                figure.mean_us if figure else None, stats.get("cv"),
                int(variant.peak_rss_mb * 1e6) if variant.peak_rss_mb is not None else None,
                variant.top1, variant.evaluated, variant.error,
            ),
        )  # fmt: skip


def query(
    path: Path,
    *,
    device: str | None = None,
    model: str | None = None,
    variant: str | None = None,
    last: int | None = None,
) -> list[HistoryRow]:
    """Rows oldest first; `last` keeps the newest N runs."""
    where, params = [], []
    for column, value in (("r.device", device), ("r.model", model), ("v.variant", variant)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    runs_clause = ""
    if last is not None:
        runs_clause = (
            f"AND r.run_id IN (SELECT r.run_id FROM runs r JOIN variants v USING (run_id) {clause} "
            f"GROUP BY r.run_id ORDER BY r.started_at DESC, r.run_id DESC LIMIT {int(last)})"
        )
        params = params * 2
    sql = (
        "SELECT r.run_id, r.started_at, r.device, r.model, v.variant, v.status, r.runtime || ' ' || r.runtime_version,"
        " r.threads, v.p50_us, v.peak_rss_bytes, v.top1, r.folder"
        f" FROM runs r JOIN variants v USING (run_id) {clause or 'WHERE 1'} {runs_clause}"
        " ORDER BY r.started_at, r.run_id, v.rowid"
    )
    with reader(path) as connection:
        if connection is None:
            return []
        return [HistoryRow(*row) for row in connection.execute(sql, params)]


@contextlib.contextmanager
def reader(path: Path) -> Iterator[sqlite3.Connection | None]:
    """The index opened for reading only: no lock file, no set-up, nothing written, so a results folder on a
    read-only disk (an archive, a CI artifact) can be queried. None when there is no index yet."""
    path = Path(path)
    if not path.is_file():
        yield None
        return
    connection = None
    # mode=ro reads a WAL index alongside a writer; on a read-only disk SQLite cannot make the WAL's shared
    # memory file, and immutable=1 (nothing can change it there) is how such a file is read.
    for options in ("mode=ro", "immutable=1"):
        try:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?{options}", uri=True,
                                         timeout=BUSY_TIMEOUT_MS / 1000)  # fmt: skip
            version = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            break
        except sqlite3.OperationalError as error:
            connection.close()
            connection = None
            if "no such table" in str(error):
                raise HistoryError(f"{path} is not an edgebench history index: run 'edgebench history rebuild' to "
                                   "move it aside and re-create it") from None  # fmt: skip
        except sqlite3.DatabaseError as error:
            connection.close()
            raise _unreadable(path, error) from None
    if connection is None:
        raise HistoryError(f"cannot open the history index {path} for reading")
    try:
        if version is None or version[0] != str(INDEX_SCHEMA_VERSION):
            raise HistoryError(f"{path} is history index version {version[0] if version else '?'}, this edgebench "
                               f"reads {INDEX_SCHEMA_VERSION}: run 'edgebench history rebuild'")  # fmt: skip
        yield connection
    except sqlite3.DatabaseError as error:
        raise _unreadable(path, error) from None
    finally:
        connection.close()


def _unreadable(path: Path, error: Exception) -> HistoryError:
    return HistoryError(f"the history index {path} is unreadable ({error}): run 'edgebench history rebuild'")


def indexed_runs(path: Path) -> int:
    with reader(path) as connection:
        return 0 if connection is None else connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
