"""The on-disk record that makes resume and never-pay-twice work.

A SQLite file (WAL, safe for several processes on one machine) in the user cache directory. It
knows, for every request batchling submitted, which submission (and provider batch job) holds it,
and, once downloaded, its result. It is written *before* money is spent: a submission and its
requests are recorded before the provider is asked to create the job, and the job id as soon as
the provider returns it.

A request is known by its `custom_id` (a digest of provider, endpoint, model, base URL and body,
plus an occurrence number): never an API key or other secret. Nothing secret is stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import platformdirs

from batchling import json_codec
from batchling.provider import LineResult, Outcome

CACHE_DIR_ENV = "BATCHLING_CACHE_DIR"
FILE_NAME = "journal.sqlite3"
RETENTION_SECONDS = 30 * 24 * 3600
"""Entries older than this are dropped: the providers keep batch files about as long."""
CACHE_KIB = 4 * 1024
"""SQLite's page cache for the journal connection, at most (it grows only as pages are used, and
is not given back while the journal is open: at 32 MB, a block of 100,000 calls peaked 60 MB
higher for no time saved)."""
CANCEL_REQUESTED_KEY = "batchling_cancel_requested"
"""In a submission's `info`: batchling asked the provider to cancel the job as a block ended."""
CANCEL_REQUESTED_STATUS = "cancel requested"
"""The status `batchling batches list` shows for such a job until a re-run follows it."""
FAULTS = (sqlite3.Error, OSError)
"""What a journal that cannot be opened, read or written raises (a full disk, a path that is no
directory, a locked or broken file)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    submission_id   TEXT PRIMARY KEY,
    provider        TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    model           TEXT NOT NULL,
    base_url        TEXT NOT NULL,
    client_key      TEXT NOT NULL,
    size            INTEGER NOT NULL,
    state           TEXT NOT NULL,
    batch_id        TEXT,
    provider_status TEXT,
    info            TEXT NOT NULL DEFAULT '{}',
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    custom_id     TEXT PRIMARY KEY,
    submission_id TEXT NOT NULL,
    position      INTEGER NOT NULL,
    outcome       TEXT,
    status_code   INTEGER,
    body          TEXT,
    request_id    TEXT,
    message       TEXT,
    created_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_submission ON requests (submission_id, position);
CREATE INDEX IF NOT EXISTS submissions_by_batch ON submissions (batch_id);
CREATE TABLE IF NOT EXISTS results (
    custom_id     TEXT PRIMARY KEY,
    submission_id TEXT NOT NULL,
    line          TEXT NOT NULL
);
"""
# A result is one row of `results`: its line is the JSON array [outcome, status code, body,
# request id, message]. The result columns of `requests` are where earlier batchlings kept it:
# still read (a journal is shared by every batchling of the user, of whatever version), never
# written.

SCHEMA_VERSION = 1
"""`PRAGMA user_version` of a journal whose base URLs were checked for credentials."""


class SubmissionState(enum.StrEnum):
    """Where a submission is, as far as the journal knows."""

    SUBMITTING = "submitting"
    """Recorded, and the provider asked to create the job; no job id known yet."""
    RUNNING = "running"
    """The provider created the job; results not downloaded yet."""
    ENDED = "ended"
    """The job ended and every result it had was stored."""
    ABANDONED = "abandoned"
    """Creating the job failed for sure: nothing in it was paid for."""


@dataclasses.dataclass(frozen=True, slots=True)
class Submission:
    """One journaled submission (a batch job, once created)."""

    submission_id: str
    provider: str
    endpoint: str
    model: str
    base_url: str
    client_key: str
    size: int
    state: SubmissionState
    batch_id: str | None
    provider_status: str | None
    info: Mapping[str, Any]
    created_at: float
    updated_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """What the journal knows of one request."""

    custom_id: str
    submission: Submission
    result: LineResult | None


def default_directory() -> Path:
    """`$BATCHLING_CACHE_DIR`, else the user cache directory."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("batchling", appauthor=False))


def resolve_path(cache: bool | str | os.PathLike[str]) -> Path | None:
    """The journal file for a `batchify(cache=...)` value; `None` when the journal is off."""
    if cache is False:
        return None
    directory = default_directory() if cache is True else Path(cache).expanduser()
    return directory / FILE_NAME


_T = TypeVar("_T")
_P = ParamSpec("_P")


def _locked(method: Callable[_P, _T]) -> Callable[_P, _T]:
    @functools.wraps(method)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        journal = args[0]
        assert isinstance(journal, Journal)
        with journal._lock:
            return method(*args, **kwargs)

    return locked


class Journal:
    """A connection to the journal file; use from one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file owner-only before SQLite opens it; SQLite gives its -wal and -shm
        # files the same permissions.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        # One connection shared by the block's event loop threads (an async block's loop and
        # the loop thread of sync clients), each use under the lock.
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
        # One statement per thousand results (see `store_results`): JSON functions, and an
        # upsert (SQLite 3.24).
        self._reads_json = sqlite3.sqlite_version_info >= (3, 24) and sqlite_reads_json(self._db)
        self._upgrade()
        self.expire()

    def _upgrade(self) -> None:
        """Scrub the base URLs of a journal written before `storable_url`, once."""
        if self._db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        # Overwritten, not just unlinked: credentials in old base URLs must not linger in free
        # pages (nor, below, in the write-ahead log).
        self._db.execute("PRAGMA secure_delete=ON")
        try:
            with self._transaction() as db:
                if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
                    return  # another process upgraded it meanwhile
                scrubbed = _forget_url_credentials(db)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if scrubbed:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.execute("PRAGMA secure_delete=OFF")

    @_locked
    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- reading ---------------------------------------------------------------------------

    def lookup(self, custom_id: str) -> Entry | None:
        """What the journal knows of one request, if anything."""
        return self.lookup_many([custom_id]).get(custom_id)

    @_locked
    def lookup_many(self, custom_ids: Sequence[str]) -> dict[str, Entry]:
        """What the journal knows of these requests, by custom id (unknown ones left out)."""
        found: dict[str, Entry] = {}
        submissions: dict[str, Submission] = {}
        for chunk, marks in _chunks(custom_ids):
            rows = self._db.execute(
                f"SELECT r.custom_id, x.line, {_LEGACY_RESULT}, {_SUBMISSION_COLUMNS} "
                "FROM requests r JOIN submissions s ON s.submission_id = r.submission_id "
                "LEFT JOIN results x ON x.custom_id = r.custom_id "
                f"AND x.submission_id = r.submission_id WHERE r.custom_id IN ({marks})",
                chunk,
            )
            for row in rows:
                custom, line = row[:2]
                submission = submissions.get(row[7])
                if submission is None:
                    submission = submissions[row[7]] = _submission(row[7:])
                result = None
                if line is not None:
                    result = _line_result(custom, json_codec.loads(line))
                elif row[2] is not None:  # kept by an earlier batchling
                    outcome, status_code, body, request_id, message = row[2:7]
                    body = json_codec.loads(body) if body is not None else None
                    result = _line_result(custom, [outcome, status_code, body, request_id, message])
                found[custom] = Entry(custom, submission, result)
        return found

    @_locked
    def custom_ids(self, submission_id: str) -> list[str]:
        """The requests of a submission, in submission order."""
        rows = self._db.execute(
            "SELECT custom_id FROM requests WHERE submission_id = ? ORDER BY position",
            (submission_id,),
        )
        return [row[0] for row in rows]

    @_locked
    def submissions(self, *, states: Iterable[SubmissionState] | None = None) -> list[Submission]:
        """Journaled submissions, newest first."""
        query = f"SELECT {_SUBMISSION_COLUMNS} FROM submissions s"
        params: list[str] = []
        if states is not None:
            wanted = list(states)
            query += f" WHERE s.state IN ({','.join('?' * len(wanted))})"
            params = [str(state) for state in wanted]
        rows = self._db.execute(query + " ORDER BY s.created_at DESC", params)
        return [_submission(row) for row in rows]

    @_locked
    def find_submission(self, key: str) -> Submission | None:
        """A submission by its submission id or provider batch id."""
        row = self._db.execute(
            f"SELECT {_SUBMISSION_COLUMNS} FROM submissions s "
            "WHERE s.submission_id = ? OR s.batch_id = ?",
            (key, key),
        ).fetchone()
        return _submission(row) if row is not None else None

    @_locked
    def stats(self) -> dict[str, int]:
        """Counts for `batchling cache info`."""
        submissions = self._db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
        requests, legacy = self._db.execute(
            "SELECT COUNT(*), COUNT(outcome) FROM requests"
        ).fetchone()
        results = (
            self._db.execute(
                "SELECT COUNT(*) FROM results x JOIN requests r "
                "ON r.custom_id = x.custom_id AND r.submission_id = x.submission_id"
            ).fetchone()[0]
            + legacy
        )
        running = self._db.execute(
            "SELECT COUNT(*) FROM submissions WHERE state IN (?, ?)",
            (SubmissionState.SUBMITTING, SubmissionState.RUNNING),
        ).fetchone()[0]
        size = sum(
            candidate.stat().st_size
            for candidate in self.path.parent.glob(self.path.name + "*")
            if candidate.is_file()
        )
        return {
            "submissions": int(submissions),
            "running": int(running),
            "requests": int(requests),
            "results": int(results),
            "bytes": int(size),
        }

    # -- writing ---------------------------------------------------------------------------

    @_locked
    def begin_submission(self, submission: Submission, custom_ids: Sequence[str]) -> set[str]:
        """Record a submission and its requests before the provider is asked to create it.

        Returns the requests another live submission (another process running the same
        program, say) already holds: they are not recorded here and must not be sent again.
        The check and the claim are one transaction, so two processes never both claim one.
        """
        now = time.time()
        with self._transaction() as db:
            # Usually every request is new: one pass inserts them all. Otherwise the requests
            # already known are checked for a live submission holding them, and the rest are
            # taken over from their ended (or abandoned) submission.
            before = db.total_changes
            if self._reads_json:
                # One statement reading the ids as a JSON array (without Python's GIL).
                ids = json_codec.dumps(list(custom_ids))
                db.execute(_CLAIM_DOCUMENT, (submission.submission_id, now, ids))
            else:
                db.executemany(
                    "INSERT OR IGNORE INTO requests (custom_id, submission_id, position, "
                    "created_at) VALUES (?, ?, ?, ?)",
                    # In key order: SQLite fills its index pages one after another.
                    sorted(
                        (custom_id, submission.submission_id, position, now)
                        for position, custom_id in enumerate(custom_ids)
                    ),
                )
            held: set[str] = set()
            size = len(custom_ids)
            if db.total_changes - before != len(custom_ids):
                known = _known(db, custom_ids, submission.submission_id)
                held = _held_elsewhere(db, known)
                size -= len(held)
                taken = [
                    (submission.submission_id, position, now, custom_id)
                    for position, custom_id in enumerate(custom_ids)
                    if custom_id in known and custom_id not in held
                ]
                db.executemany(
                    "UPDATE requests SET submission_id = ?, position = ?, created_at = ?, "
                    "outcome = NULL, status_code = NULL, body = NULL, request_id = NULL, "
                    "message = NULL WHERE custom_id = ?",
                    taken,
                )
                db.executemany(
                    "DELETE FROM results WHERE custom_id = ?", [row[3:] for row in taken]
                )
            if not size:
                return held
            db.execute(
                "INSERT INTO submissions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    submission.submission_id, submission.provider, submission.endpoint,
                    submission.model, storable_url(submission.base_url), submission.client_key,
                    size, str(SubmissionState.SUBMITTING), None, None,
                    json.dumps(dict(submission.info)), now, now,
                ),
            )  # fmt: skip
        return held

    @_locked
    def mark_submitted(self, submission_id: str, batch_id: str, info: Mapping[str, Any]) -> None:
        """Record the provider's job id for a submission."""
        with self._transaction() as db:
            db.execute(
                "UPDATE submissions SET state = ?, batch_id = ?, info = ?, updated_at = ? "
                "WHERE submission_id = ?",
                (
                    str(SubmissionState.RUNNING), batch_id, json.dumps(dict(info)),
                    time.time(), submission_id,
                ),
            )  # fmt: skip

    @_locked
    def mark_cancel_requested(self, batch_id: str) -> None:
        """Record that batchling asked the provider to cancel this job (`cancel_on_exit`): a
        re-run that finds it cancelled sends the requests it left unanswered again."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT submission_id, info FROM submissions WHERE batch_id = ?", (batch_id,)
            ).fetchall()
            for submission_id, info in rows:
                marked = {**json.loads(info or "{}"), CANCEL_REQUESTED_KEY: True}
                db.execute(
                    "UPDATE submissions SET info = ?, provider_status = ?, updated_at = ? "
                    "WHERE submission_id = ?",
                    (json.dumps(marked), CANCEL_REQUESTED_STATUS, time.time(), submission_id),
                )

    @_locked
    def mark_status(self, submission_id: str, provider_status: str) -> None:
        """Record the provider's latest status word for a running job."""
        with self._transaction() as db:
            db.execute(
                "UPDATE submissions SET provider_status = ?, updated_at = ? "
                "WHERE submission_id = ?",
                (provider_status, time.time(), submission_id),
            )

    def store_results(
        self, submission_id: str, results: Iterable[LineResult], *, ended: str | None = None
    ) -> None:
        """Keep downloaded results, so a re-run gets them without the network; with `ended`
        (the provider's status word), record in the same transaction that the job ended.

        SQLite does the work: each thousand results are one JSON document that one
        statement reads, with Python's GIL released (see `begin_storing_results`)."""
        self._store(submission_id, list(results), ended)

    def begin_storing_results(
        self, submission_id: str, results: Iterable[LineResult], ended: str
    ) -> Callable[[], None]:
        """Start `store_results(submission_id, results, ended=ended)` in a thread of its own,
        and return the wait for it, which raises what the store raised.

        The caller does its own work meanwhile (routing the results: building each caller's
        answer) and waits before anyone sees a result. Where this SQLite cannot read JSON, the
        store goes row by row, holding the GIL for each row: in a thread it would wait on the
        caller's work for every one, so the wait does the store instead (as it does when no
        thread can be started)."""
        store = functools.partial(self._store, submission_id, list(results), ended)
        if self._reads_json:
            try:
                return _Background(store).wait
            except RuntimeError:  # can't start new thread
                pass
        return store

    @_locked
    def _store(self, submission_id: str, pending: list[LineResult], ended: str | None) -> None:
        with self._transaction() as db:
            while pending:
                # From the first: the order the caller routes results in, so that each is let
                # go of once both are done with it.
                chunk = pending[:_STORE_CHUNK]
                del pending[:_STORE_CHUNK]
                if self._reads_json:
                    for document in _results_documents(chunk):
                        db.execute(_STORE_DOCUMENT, (submission_id, document))
                else:
                    rows = [_result_row(submission_id, result) for result in chunk]
                    db.executemany(_REPLACE_ONE, rows)
                    db.executemany(_ADD_ONE, rows)
            if ended is not None:
                db.execute(
                    "UPDATE submissions SET state = ?, provider_status = ?, updated_at = ? "
                    "WHERE submission_id = ?",
                    (str(SubmissionState.ENDED), ended, time.time(), submission_id),
                )

    def mark_ended(self, submission_id: str, provider_status: str) -> None:
        """Record that a job ended and its results are stored."""
        self._set_state(submission_id, SubmissionState.ENDED, provider_status)

    @_locked
    def abandon(self, submission_id: str) -> None:
        """Record that a submission was never created: its requests are free to go again."""
        with self._transaction() as db:
            db.execute(
                "UPDATE submissions SET state = ?, updated_at = ? WHERE submission_id = ?",
                (str(SubmissionState.ABANDONED), time.time(), submission_id),
            )
            db.execute(
                "DELETE FROM requests WHERE submission_id = ? AND " + _no_result("requests"),
                (submission_id,),
            )

    @_locked
    def release(self, custom_ids: Iterable[str]) -> None:
        """Forget requests without a result (e.g. to resubmit them in a new job)."""
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM requests WHERE custom_id = ? AND " + _no_result("requests"),
                [(custom_id,) for custom_id in custom_ids],
            )

    @_locked
    def _set_state(self, submission_id: str, state: SubmissionState, status: str | None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE submissions SET state = ?, provider_status = COALESCE(?, provider_status), "
                "updated_at = ? WHERE submission_id = ?",
                (str(state), status, time.time(), submission_id),
            )

    @_locked
    def expire(self, max_age_seconds: float = RETENTION_SECONDS) -> None:
        """Drop entries older than the providers keep their files."""
        cutoff = time.time() - max_age_seconds
        with self._transaction() as db:
            if db.execute("DELETE FROM requests WHERE created_at < ?", (cutoff,)).rowcount:
                db.execute(
                    "DELETE FROM results WHERE NOT EXISTS (SELECT 1 FROM requests r WHERE "
                    "r.custom_id = results.custom_id AND r.submission_id = results.submission_id)"
                )
            db.execute(
                "DELETE FROM submissions WHERE created_at < ? AND submission_id NOT IN "
                "(SELECT DISTINCT submission_id FROM requests)",
                (cutoff,),
            )

    @_locked
    def clear(self) -> None:
        """Forget everything."""
        with self._transaction() as db:
            db.execute("DELETE FROM results")
            db.execute("DELETE FROM requests")
            db.execute("DELETE FROM submissions")


def _no_result(requests: str) -> str:
    """SQL: the journal holds no result for the row of `requests` (the table or its alias)."""
    return (
        f"{requests}.outcome IS NULL AND NOT EXISTS (SELECT 1 FROM results x "
        f"WHERE x.custom_id = {requests}.custom_id AND x.submission_id = {requests}.submission_id)"
    )


_STORE_CHUNK = 1_000
"""Results per statement of `store_results`. SQLite's memory for a statement (its copy of the
document, the parsed JSON, the sorted rows) is a few times the document's size, and the C heap
keeps its high-water mark: a few hundred kilobytes a statement, not megabytes."""

_KEEP_RESULT = """
ON CONFLICT (custom_id) DO UPDATE SET submission_id = excluded.submission_id, line = excluded.line
WHERE results.submission_id = excluded.submission_id OR NOT EXISTS (
    SELECT 1 FROM requests r
    WHERE r.custom_id = results.custom_id AND r.submission_id = results.submission_id
)
"""
"""A stored result is replaced only by its own submission's, or if no request holds it (a
result another submission holds stays: a job's stray lines never take it)."""

_STORE_DOCUMENT = f"""
INSERT INTO results (custom_id, submission_id, line)
SELECT j.key, ?1, CASE j.type WHEN 'text' THEN j.atom ELSE j.value END
FROM json_each(CAST(?2 AS TEXT)) AS j WHERE 1 ORDER BY j.key
{_KEEP_RESULT}"""
"""Store a `_results_documents` document's lines, in key order (the order of the table's
index)."""

_REPLACE_ONE = """
UPDATE results SET submission_id = ?1, line = ?3 WHERE custom_id = ?2 AND (
    submission_id = ?1 OR NOT EXISTS (
        SELECT 1 FROM requests r
        WHERE r.custom_id = results.custom_id AND r.submission_id = results.submission_id
    )
)
"""
_ADD_ONE = "INSERT OR IGNORE INTO results (custom_id, submission_id, line) VALUES (?2, ?1, ?3)"
"""Row by row (`_REPLACE_ONE`, then `_ADD_ONE`): what `_KEEP_RESULT` does, on any SQLite."""

_LEGACY_RESULT = "r.outcome, r.status_code, r.body, r.request_id, r.message"
"""A result as earlier batchlings kept it, in the row of `requests` `r`."""

_CLAIM_DOCUMENT = """
INSERT OR IGNORE INTO requests (custom_id, submission_id, position, created_at)
SELECT j.value, ?1, j.key, ?2 FROM json_each(CAST(?3 AS TEXT)) AS j ORDER BY j.value
"""
"""Claim the requests of a JSON array of custom ids for a submission, each at its place in the
array, in key order (SQLite then fills its index pages one after another)."""


def _line_result(custom_id: str, line: Sequence[Any]) -> LineResult:
    outcome, status_code, body, request_id, message = line
    return LineResult(custom_id, Outcome(outcome), status_code, body, request_id, message)


def _line(result: LineResult) -> list[Any]:
    return [str(result.outcome), result.status_code, result.body, result.request_id, result.message]


_DOCUMENT_BYTES = 8 * 1024 * 1024
"""Results documents are split until each is at most this long, or holds one result (SQLite
refuses a string of more than a billion bytes, and needs a few times a document's size)."""


def _results_documents(results: Sequence[LineResult]) -> Iterator[bytes]:
    """JSON objects of `results`' lines by custom id, for `_STORE_DOCUMENT`."""
    document = json_codec.dumps({result.custom_id: _line(result) for result in results})
    if len(document) > _DOCUMENT_BYTES and len(results) > 1:
        del document
        half = len(results) // 2
        yield from _results_documents(results[:half])
        yield from _results_documents(results[half:])
        return
    if b"NaN" in document or b"Infinity" in document:
        # SQLite's JSON reader refuses NaN and Infinity (or, since 3.42, reads them as null and
        # 9e999): each line is then a JSON string of its own text, stored as is.
        document = json_codec.dumps(
            {result.custom_id: json_codec.dumps(_line(result)).decode() for result in results}
        )
    yield document


def _result_row(submission_id: str, result: LineResult) -> tuple[str, str, str]:
    return submission_id, result.custom_id, json_codec.dumps(_line(result)).decode()


class _Background:
    """One piece of work in a thread of its own, and the wait for it."""

    def __init__(self, work: Callable[[], None]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(work,), name="batchling-journal-store"
        )
        self._thread.start()

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # handed to the waiter
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error


def storable_url(url: str) -> str:
    """A base URL as the journal keeps it: without a user name and password or a query, which
    can hold credentials (a proxy's basic auth, a gateway's `?key=`). `batchling batches` then
    takes them from the environment, as it does API keys."""
    parts = urllib.parse.urlsplit(url)
    if not (parts.username or parts.password or parts.query or parts.fragment):
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def sqlite_reads_json(db: sqlite3.Connection) -> bool:
    """Whether this SQLite has its JSON functions (built in since 3.38, and in most builds
    before): results are then stored without holding Python's GIL (see `store_results`)."""
    try:
        db.execute("SELECT count(*) FROM json_each('[]')").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


def _forget_url_credentials(db: sqlite3.Connection) -> bool:
    """Rewrite base URLs that journals written before `storable_url` kept whole; whether any
    was."""
    rows = db.execute(
        "SELECT submission_id, base_url FROM submissions "
        "WHERE base_url LIKE '%@%' OR base_url LIKE '%?%' OR base_url LIKE '%#%'"
    ).fetchall()
    changed = [
        (stored, submission_id)
        for submission_id, url in rows
        if (stored := storable_url(url)) != url
    ]
    db.executemany("UPDATE submissions SET base_url = ? WHERE submission_id = ?", changed)
    return bool(changed)


def _known(db: sqlite3.Connection, custom_ids: Sequence[str], submission_id: str) -> set[str]:
    """Which of `custom_ids` the journal held before `submission_id` claimed the new ones."""
    known: set[str] = set()
    for chunk, marks in _chunks(custom_ids):
        rows = db.execute(
            f"SELECT custom_id FROM requests WHERE submission_id != ? AND custom_id IN ({marks})",
            [submission_id, *chunk],
        )
        known.update(row[0] for row in rows)
    return known


def _held_elsewhere(db: sqlite3.Connection, custom_ids: Collection[str]) -> set[str]:
    """Which of `custom_ids` a live submission holds and has no result for yet."""
    held: set[str] = set()
    for chunk, marks in _chunks(list(custom_ids)):
        rows = db.execute(
            "SELECT r.custom_id FROM requests r JOIN submissions s "
            "ON s.submission_id = r.submission_id WHERE s.state IN (?, ?) "
            f"AND r.custom_id IN ({marks}) AND {_no_result('r')}",
            [str(SubmissionState.SUBMITTING), str(SubmissionState.RUNNING), *chunk],
        )
        held.update(row[0] for row in rows)
    return held


_CHUNK = 500
"""Custom ids per query: well under SQLite's limit on query parameters."""


def _chunks(custom_ids: Sequence[str]) -> Iterator[tuple[list[str], str]]:
    """`custom_ids` a query's worth at a time, each with its `IN (...)` placeholders."""
    for start in range(0, len(custom_ids), _CHUNK):
        chunk = list(custom_ids[start : start + _CHUNK])
        yield chunk, ",".join("?" * len(chunk))


_SUBMISSION_COLUMNS = (
    "s.submission_id, s.provider, s.endpoint, s.model, s.base_url, s.client_key, s.size, "
    "s.state, s.batch_id, s.provider_status, s.info, s.created_at, s.updated_at"
)


def _submission(row: Sequence[Any]) -> Submission:
    return Submission(
        submission_id=row[0],
        provider=row[1],
        endpoint=row[2],
        model=row[3],
        base_url=row[4],
        client_key=row[5],
        size=int(row[6]),
        state=SubmissionState(row[7]),
        batch_id=row[8],
        provider_status=row[9],
        info=json.loads(row[10] or "{}"),
        created_at=float(row[11]),
        updated_at=float(row[12]),
    )
