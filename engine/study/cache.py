"""A persistent response cache for the study's calls, so that a repeated study is free.

Keyed by the endpoint's model and the whole request the scorer or proposer would send (template
output, every sampling parameter); for sampled requests (proposals at temperature > 0) the key
also carries the how-many-th identical request this is, so a repeated study replays the same
answers in the same order while one study still gets fresh samples.

The answers live in one SQLite database (the standard library's `sqlite3`) in WAL mode: answers
are committed in small batches (every 64, or 50 ms after the first of a batch; what is committed
survives `kill -9`, and what a kill loses the journal holds), several processes may share the
file, and a lookup reads one row, so the file is never loaded whole. It is bounded: past `max_mb` the
oldest answers go. It is only a cache: a write that fails (a full disk, a damaged file) is
reported once and the study goes on without it; nothing it holds can stop or corrupt a study.

It never takes the journal's room. It opens, and starts each batch of writes, only while its
disk has more than `RESERVE_BYTES` free; below that it stands aside as after a failure. Its
write-ahead file is checkpointed every 256 pages and cut back to 1 MB, so it cannot grow into
space freed for the journal; and when the cache stands aside it checkpoints and truncates that
file (`wal_checkpoint(TRUNCATE)`), giving back what it held. `out_of_space` then says why, for
the journal's own no-space message to name the cache too.
Reference: SQLite, "Write-Ahead Logging" (https://sqlite.org/wal.html) and "PRAGMA
wal_checkpoint", "PRAGMA journal_size_limit".
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.errors import setting_value
from engine.llm.pacing.limiter import RateLimiter
from engine.propose import CandidateSource, Evidence, Parent, Proposal, ProposalBatch
from engine.study.legacy import V2_ORIGINS
from engine.study.prompting import Demos
from engine.study.scoring import PacedScorer, Score, Scorer
from engine.task.types import Example

__all__ = [
    "CACHE_FILE",
    "RESERVE_BYTES",
    "CacheStats",
    "CachedProposer",
    "CachedScorer",
    "ResponseCache",
]

#: The cache's file name in a state folder (.ape/ for `run`, the service's --state-dir).
CACHE_FILE = "cache.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT NOT NULL UNIQUE,
    value BLOB NOT NULL,
    created REAL NOT NULL
)
"""
_TRIM_EVERY = 256  # puts between two checks of the size
_TRIM_TO = 0.9  # past the limit, the oldest answers go until this share of it is left
_BUSY_S = 1.0  # wait this long for another process's write, then skip this one
_BATCH = 64  # answers per transaction, at most
_BATCH_S = 0.05  # a batch is committed this long after its first answer, at most
#: the cache writes only while its disk has more than this free: the rest is the journal's
RESERVE_BYTES = 16_000_000
_WAL_PAGES = 256  # a checkpoint past this many pages in the write-ahead file (1 MB)
_WAL_LIMIT = 1 << 20  # and the file is cut back to this size after it


@dataclass(frozen=True, slots=True)
class CacheStats:
    path: str
    entries: int
    bytes: int
    oldest: float | None  # UNIX time of the oldest and newest answers
    newest: float | None


class ResponseCache:
    """The answers of earlier calls, by request key. `say` reports (once) a failure to read
    or write; the cache then stands aside and the study goes on."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_mb: float = 2048.0,
        say: Callable[[str], None] = print,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = int(max_mb * 1_000_000)
        self.reserve_bytes = reserve_bytes  # 0 for a tool that only reads or clears it
        self.hits = 0
        self.misses = 0
        self.skipped = 0  # writes given up because another process held the file
        #: why the cache could not be written for lack of space (None: it could, or failed
        #: for another reason)
        self.out_of_space: str | None = None
        self._say = say
        self._reported = False
        self._puts = 0
        self._pending = 0  # answers written in the open transaction
        self._batch_started = 0.0
        self._db: sqlite3.Connection | None = None
        if not self._room():
            return
        try:
            self._db = _connect(self.path)
            self._trim()
        except (sqlite3.Error, OSError) as error:
            self._failed("cannot open it", error)

    @staticmethod
    def key(request: Any) -> str:
        return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()

    @property
    def working(self) -> bool:
        return self._db is not None

    def get(self, key: str) -> Any:
        value = None
        if self._db is not None:
            try:
                row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
                value = orjson.loads(row[0]) if row is not None else None
            except (sqlite3.Error, orjson.JSONDecodeError) as error:
                self._failed("cannot read it", error)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        if self._db is None:
            return
        if self._pending == 0 and not self._room():
            return
        try:
            now = time.monotonic()
            if self._pending == 0:
                self._db.execute("BEGIN IMMEDIATE")
                self._batch_started = now
            self._db.execute(
                "INSERT OR REPLACE INTO answers (key, value, created) VALUES (?, ?, ?)",
                (key, orjson.dumps(value), time.time()),
            )
            self._pending += 1
            self._puts += 1
            if self._pending >= _BATCH or now - self._batch_started >= _BATCH_S:
                self._commit()
            if self._puts % _TRIM_EVERY == 0:
                self._trim()
        except sqlite3.OperationalError as error:
            if _busy(error):
                self.skipped += 1  # another process is writing: this answer is not kept
                self._rollback()
                return
            self._failed("cannot write to it", error)
        except sqlite3.Error as error:
            self._failed("cannot write to it", error)

    def _commit(self) -> None:
        if self._db is not None and self._pending:
            self._pending = 0
            self._db.execute("COMMIT")

    def _rollback(self) -> None:
        if self._db is not None and self._db.in_transaction:
            self.skipped += self._pending - 1 if self._pending else 0
            self._pending = 0
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _room(self) -> bool:
        """Is there room to write (more than `reserve_bytes` free on the cache's disk)? When
        there is not, the cache stands aside, giving back what its write-ahead file holds."""
        free = _free_bytes(self.path)
        if free is None or free > self.reserve_bytes:
            return True
        self.out_of_space = (
            f"its disk has {free / 1e6:.1f} MB free, less than the {self.reserve_bytes / 1e6:g} "
            "MB it leaves to the journal"
        )
        self._stand_aside(
            f"response cache {str(self.path)!r}: {self.out_of_space}; the study goes on "
            "without it (free some space, or give a --cache file on another disk, or --no-cache)"
        )
        return False

    def _failed(self, doing: str, error: Exception) -> None:
        """Report the first failure and stand aside: a cache is never worth a failed study."""
        if _no_space(error, self.path):
            self.out_of_space = "No space left on device"
        self._stand_aside(
            f"response cache {str(self.path)!r}: {doing} ({error}); the study goes on "
            f"without it (check the disk, or give another {setting_value('cache', 'FILE')}, "
            f"or {setting_value('no_cache', 'true')})"
        )

    def _stand_aside(self, message: str) -> None:
        if not self._reported:
            self._reported = True
            self._say(message)
        self._rollback()
        if self._db is not None:  # give back the write-ahead file's space where it can
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.close()

    def _trim(self) -> None:
        """Past `max_bytes`, delete the oldest answers (their pages are reused: the file stops
        growing)."""
        assert self._db is not None
        self._commit()
        used = _used_bytes(self._db)
        if used <= self.max_bytes:
            return
        (count,) = self._db.execute("SELECT count(*) FROM answers").fetchone()
        drop = max(1, int(count * (1 - _TRIM_TO * self.max_bytes / used)))
        self._db.execute(
            "DELETE FROM answers WHERE rowid IN (SELECT rowid FROM answers ORDER BY rowid LIMIT ?)",
            (drop,),
        )

    def stats(self) -> CacheStats:
        if self._db is None:
            return CacheStats(str(self.path), 0, 0, None, None)
        self._commit()
        entries, oldest, newest = self._db.execute(
            "SELECT count(*), min(created), max(created) FROM answers"
        ).fetchone()
        return CacheStats(str(self.path), entries, _used_bytes(self._db), oldest, newest)

    def clear(self, older_than_s: float | None = None) -> int:
        """Delete every answer (or those older than `older_than_s` seconds); how many went."""
        if self._db is None:
            return 0
        self._commit()
        if older_than_s is None:
            cursor = self._db.execute("DELETE FROM answers")
        else:
            cursor = self._db.execute(
                "DELETE FROM answers WHERE created < ?", (time.time() - older_than_s,)
            )
        self._db.execute("VACUUM")
        return cursor.rowcount

    def __len__(self) -> int:
        if self._db is None:
            return 0
        self._commit()
        (count,) = self._db.execute("SELECT count(*) FROM answers").fetchone()
        return int(count)

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):  # a failed commit loses a batch, no more
                self._commit()
            db, self._db = self._db, None
            with contextlib.suppress(sqlite3.Error):  # committed answers are safe in the WAL
                db.close()


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # autocommit (isolation_level None): each answer is its own transaction
    db = sqlite3.connect(path, timeout=_BUSY_S, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # durable across a crash of the process
        db.execute(f"PRAGMA wal_autocheckpoint={_WAL_PAGES}")
        db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
        db.execute(_SCHEMA)
    except sqlite3.Error:
        db.close()
        raise
    return db


def _used_bytes(db: sqlite3.Connection) -> int:
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    (free,) = db.execute("PRAGMA freelist_count").fetchone()
    (size,) = db.execute("PRAGMA page_size").fetchone()
    return int((pages - free) * size)


def _free_bytes(path: Path) -> int | None:
    """The bytes free to this user on the disk `path` is (or would be) on; None when that
    cannot be told."""
    for folder in (path.parent, *path.parent.parents):
        try:
            stat = os.statvfs(folder)
        except FileNotFoundError:
            continue
        except OSError:
            return None
        return stat.f_bavail * stat.f_frsize
    return None


def _no_space(error: Exception, path: Path) -> bool:
    """Did `error` come of a full disk (SQLite's "database or disk is full", ENOSPC, or an
    I/O error on a disk with nothing free)?"""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    code = getattr(error, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in str(error):
        return True
    return bool(code is not None and code & 0xFF == sqlite3.SQLITE_IOERR and not _free_bytes(path))


def _busy(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


class CachedScorer:
    """A scorer whose answers come from the cache when the same request was made before."""

    def __init__(self, scorer: Scorer, cache: ResponseCache, request: dict[str, Any]) -> None:
        self.scorer = scorer
        self.cache = cache
        self.request = request  # model, endpoint, mode, template, sampling parameters

    @property
    def limiter(self) -> RateLimiter | None:
        return self.scorer.limiter if isinstance(self.scorer, PacedScorer) else None

    def _key(self, instruction: str, example: Example, demos: Demos) -> str:
        request = {
            **self.request,
            "instruction": instruction,
            "input": example.input,
            "outputs": list(example.outputs),
        }
        if demos is not None:  # a candidate's own demo set, in place of the study's
            request["candidate_demos"] = [[demo.input, demo.outputs[0]] for demo in demos]
        return self.cache.key(request)

    def cached(self, instruction: str, example: Example, demos: Demos = None) -> Score | None:
        """The answer the cache holds, without a call (None when it holds none)."""
        hit = self.cache.get(self._key(instruction, example, demos))
        if hit is None:
            return None
        try:
            return Score(
                min(1.0, max(0.0, float(hit[0]))),
                int(hit[1]),
                int(hit[2]),
                0.0,
                cached=True,
                model=str(hit[3]),
                answer=str(hit[4]) if len(hit) > 4 else "",  # older entries kept no answer
                note=str(hit[5]) if len(hit) > 5 else "",  # kept when the checks said why
            )
        except (TypeError, ValueError, IndexError, KeyError):
            return None  # not an answer this version wrote: ask again

    async def score(self, instruction: str, example: Example, demos: Demos = None) -> Score:
        key = self._key(instruction, example, demos)
        hit = self.cached(instruction, example, demos)
        if hit is not None:
            return hit
        score = await (
            self.scorer.score(instruction, example)
            if demos is None
            else self.scorer.score(instruction, example, demos)
        )
        entry = [score.reward, score.prompt_tokens, score.completion_tokens, score.model]
        entry += [score.answer, score.note] if score.note else [score.answer]
        self.cache.put(key, entry)
        return score


class CachedProposer:
    """A proposer whose batches replay from the cache in the order they were first made."""

    def __init__(
        self, proposer: CandidateSource, cache: ResponseCache, request: dict[str, Any]
    ) -> None:
        self.proposer = proposer
        self.cache = cache
        self.request = request
        self._occurrences: Counter[str] = Counter()

    def _key(self, call: list[Any]) -> str:
        base = self.cache.key({**self.request, "call": call})
        self._occurrences[base] += 1
        return self.cache.key([base, self._occurrences[base]])

    async def _cached(self, key: str, batch_of: Any) -> ProposalBatch:
        hit = _batch(self.cache.get(key))
        if hit is not None:
            return hit
        batch: ProposalBatch = await batch_of()
        self.cache.put(
            key,
            {
                "proposals": [[p.text, p.origin, list(p.parents)] for p in batch.proposals],
                "generated": batch.generated,
                "duplicates": batch.duplicates,
                "rejected": batch.rejected,
                "model": batch.model,
                "raw": list(batch.raw),
                "reasons": batch.reasons,
                "kind": batch.kind,
            },
        )
        return batch

    async def propose(self, count: int) -> ProposalBatch:
        return await self._cached(
            self._key(["propose", count]), lambda: self.proposer.propose(count)
        )

    async def vary(self, parent_text: str, parent_id: int, n: int) -> ProposalBatch:
        return await self._cached(
            self._key(["vary", parent_text, parent_id, n]),
            lambda: self.proposer.vary(parent_text, parent_id, n),
        )

    async def reflect(self, parent: Parent, evidence: Sequence[Evidence], n: int) -> ProposalBatch:
        shown = [[e.input, e.expected, e.answer, e.right] for e in evidence]
        return await self._cached(
            self._key(["reflect", parent.instruction, parent.arm, shown, n]),
            lambda: self.proposer.reflect(parent, evidence, n),
        )

    async def merge(
        self,
        first: Parent,
        second: Parent,
        first_only: Sequence[Evidence],
        second_only: Sequence[Evidence],
        n: int,
    ) -> ProposalBatch:
        shown = [[[e.input, e.expected] for e in side] for side in (first_only, second_only)]
        call = ["merge", first.instruction, first.arm, second.instruction, second.arm, shown, n]
        return await self._cached(
            self._key(call),
            lambda: self.proposer.merge(first, second, first_only, second_only, n),
        )


def _batch(hit: Any) -> ProposalBatch | None:
    """A cached proposal batch, or None when the cache holds none this version can read."""
    if hit is None:
        return None
    try:
        return ProposalBatch(
            tuple(_proposal(*item) for item in hit["proposals"]),
            calls=1,
            generated=int(hit["generated"]),
            duplicates=int(hit["duplicates"]),
            rejected=int(hit["rejected"]),
            cached_calls=1,
            model=str(hit["model"]),
            raw=tuple(str(text) for text in hit.get("raw", ())),
            reasons={str(k): int(v) for k, v in hit.get("reasons", {}).items()},
            kind=str(hit.get("kind", "")),
        )
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


def _proposal(text: Any, origin: Any, parents: Any) -> Proposal:
    """A cached proposal; an entry of an earlier version names its kind as version-2 journals
    did and holds one parent (or none) instead of a list."""
    if parents is None:
        parents = []
    elif isinstance(parents, int):
        parents = [parents]
    kind = V2_ORIGINS.get(str(origin), str(origin))
    return Proposal(str(text), kind, tuple(int(parent) for parent in parents))
