"""A study's answers, paged: ``GET /v1/studies/{id}/answers?offset=&limit=&arm=&pool=``.

Every answer a study scored is in its journal (`pull_done` on the scoring pool,
`evaluation_done` on the test pool, each cut to the study's `answer_chars`); the rows come from
the journal read back by `engine.study.record` (through the `Launcher`, which adds the
examples' inputs and expected outputs when the task loads as it was), in the journal's order.
The journal only grows, so an offset keeps naming the same row while the study runs.

Reading a journal replays the whole study, so it runs on a worker thread and its rows are kept
(`AnswerBook`): a study that ended is read once; a running one again only when its journal has
changed and the rows kept are older than `REREAD_S` (a client paging through a running study
sees rows at most that old). The rows of the `KEPT_STUDIES` studies asked for last are kept.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import anyio
import msgspec

from engine.decoding import invalid
from engine.errors import EngineError
from engine.service.requests import RequestError
from engine.study.record import AnswerRow, StudyRecord

__all__ = [
    "DEFAULT_LIMIT",
    "KEPT_STUDIES",
    "MAX_LIMIT",
    "REREAD_S",
    "AnswerBook",
    "AnswerPage",
    "AnswersQuery",
    "parse_answers_query",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
REREAD_S = 2.0
KEPT_STUDIES = 8


class AnswersQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The query of the answers route; each parameter optional."""

    offset: Annotated[int, msgspec.Meta(ge=0, le=2**53)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    arm: Annotated[int, msgspec.Meta(ge=0, le=2**31)] | None = None  # one candidate's answers
    pool: Literal["scoring", "test"] | None = None  # the search's, or the final evaluation's


@dataclass(frozen=True, slots=True)
class AnswerPage:
    """Rows `offset` to `offset + len(answers)` of the `total` that match the query, oldest
    first; `next_offset` is null on the last page. `with_task`: the rows carry the examples'
    inputs and expected outputs (false when the study's task could not be loaded as it was)."""

    study_id: str
    total: int
    offset: int
    limit: int
    next_offset: int | None
    with_task: bool
    answers: tuple[AnswerRow, ...]


def parse_answers_query(query: Mapping[str, str], keys: list[str]) -> AnswersQuery:
    """The query's parameters, checked; a `RequestError` names the one refused. `keys` are
    the names as given, to refuse one given twice."""
    for name in keys:
        if keys.count(name) > 1:
            raise RequestError(f"{name}: given more than once", name)
    data = dict(query)
    try:
        parsed: AnswersQuery = msgspec.convert(data, AnswersQuery, strict=False)
    except msgspec.ValidationError as error:
        refused = invalid(error, data, AnswersQuery)
        raise RequestError(f"{refused}{_RANGES}", refused.path or None) from None
    return parsed


_RANGES = (
    f" (offset >= 0; limit from 1 to {MAX_LIMIT}, {DEFAULT_LIMIT} when not given; arm a "
    "candidate's number; pool scoring or test)"
)


@dataclass(slots=True)
class _Kept:
    """The rows of one study's journal as read at `stamp` (size, change time)."""

    lock: anyio.Lock = field(default_factory=anyio.Lock)
    stamp: tuple[int, int] | None = None
    read_at: float = -float("inf")
    rows: tuple[AnswerRow, ...] = ()
    arms: int = 0
    with_task: bool = False
    selections: dict[tuple[int | None, str | None], tuple[AnswerRow, ...]] = field(
        default_factory=dict
    )


class AnswerBook:
    """The answers of the service's studies, read from their journals off the event loop and
    kept between pages. `read` reads a journal back (`Launcher.read_record`)."""

    def __init__(
        self,
        read: Callable[[Path], StudyRecord],
        *,
        reread_s: float = REREAD_S,
        kept: int = KEPT_STUDIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._reread_s = reread_s
        self._kept_max = kept
        self._clock = clock
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self.reads = 0  # journals read back, for the tests

    async def page(
        self, study_id: str, journal: str, query: AnswersQuery, *, ended: bool
    ) -> AnswerPage:
        kept = await self._rows(study_id, Path(journal), ended=ended)
        if query.arm is not None and query.arm >= kept.arms:
            last = f" (0 to {kept.arms - 1})" if kept.arms else ""
            raise RequestError(
                f"arm: no candidate {query.arm}; the study has {kept.arms}{last}", "arm"
            )
        rows = await self._selection(kept, query.arm, query.pool)
        chosen = rows[query.offset : query.offset + query.limit]
        end = query.offset + len(chosen)
        return AnswerPage(
            study_id=study_id,
            total=len(rows),
            offset=query.offset,
            limit=query.limit,
            next_offset=end if end < len(rows) else None,
            with_task=kept.with_task,
            answers=chosen,
        )

    async def _rows(self, study_id: str, journal: Path, *, ended: bool) -> _Kept:
        kept = self._kept.pop(study_id, None) or _Kept()
        self._kept[study_id] = kept  # the most recent last
        while len(self._kept) > self._kept_max:
            self._kept.popitem(last=False)
        async with kept.lock:  # one read at a time per study; the others wait for it
            stamp = _stamp(journal)
            fresh = self._clock() - kept.read_at < self._reread_s and not ended
            if stamp is None or stamp == kept.stamp or (fresh and kept.stamp is not None):
                return kept  # not written yet, unchanged, or read a moment ago
            try:
                record = await anyio.to_thread.run_sync(self._read, journal)
            except EngineError as error:
                raise RequestError(
                    f"the study's journal cannot be read back: {error}", status=409
                ) from None
            self.reads += 1
            kept.stamp, kept.read_at = stamp, self._clock()
            kept.rows, kept.arms = record.answers, len(record.arms)
            kept.with_task = record.with_task
            kept.selections = {}
        return kept

    async def _selection(
        self, kept: _Kept, arm: int | None, pool: str | None
    ) -> tuple[AnswerRow, ...]:
        if arm is None and pool is None:
            return kept.rows
        key, rows, selections = (arm, pool), kept.rows, kept.selections  # as read now
        if key not in selections:
            selections[key] = await anyio.to_thread.run_sync(_select, rows, arm, pool)
        return selections[key]


def _select(
    rows: tuple[AnswerRow, ...], arm: int | None, pool: str | None
) -> tuple[AnswerRow, ...]:
    return tuple(
        row
        for row in rows
        if (arm is None or row.arm == arm) and (pool is None or row.pool == pool)
    )


def _stamp(journal: Path) -> tuple[int, int] | None:
    """The journal's size and change time (None: not written yet)."""
    try:
        status = os.stat(journal)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RequestError(
            f"the study's journal cannot be read: {error.strerror}", status=409
        ) from None
    return status.st_size, status.st_mtime_ns
