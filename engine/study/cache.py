"""A persistent response cache for the study's calls, so that a repeated study is free.

Keyed by the endpoint's model and the whole request the scorer or proposer would send (template
output, every sampling parameter); for sampled requests (proposals at temperature > 0) the key
also carries the how-many-th identical request this is, so a repeated study replays the same
answers in the same order while one study still gets fresh samples. Entries are JSON lines,
appended with one `write` each (they survive `kill -9`), loaded whole at start.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from engine.errors import JournalError
from engine.propose import CandidateSource, Proposal, ProposalBatch
from engine.study.scoring import Score, Scorer
from engine.task.types import Example

__all__ = ["CachedProposer", "CachedScorer", "ResponseCache"]


class ResponseCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, Any] = {}
        self.hits = 0
        self.misses = 0
        if self.path.exists():
            for line in self.path.read_bytes().split(b"\n"):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # an empty or torn line
                if isinstance(record, dict) and "key" in record:
                    self._entries[record["key"]] = record["value"]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise JournalError(
                f"response cache {str(self.path)!r}: cannot open it ({error.strerror}); "
                "choose another file with --cache or turn it off with --no-cache"
            ) from None

    @staticmethod
    def key(request: Any) -> str:
        return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def get(self, key: str) -> Any:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        self._entries[key] = value
        os.write(self._fd, orjson.dumps({"key": key, "value": value}) + b"\n")

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class CachedScorer:
    """A scorer whose answers come from the cache when the same request was made before."""

    def __init__(self, scorer: Scorer, cache: ResponseCache, request: dict[str, Any]) -> None:
        self.scorer = scorer
        self.cache = cache
        self.request = request  # model, endpoint, mode, template, sampling parameters

    def _key(self, instruction: str, example: Example) -> str:
        return self.cache.key(
            {
                **self.request,
                "instruction": instruction,
                "input": example.input,
                "outputs": list(example.outputs),
            }
        )

    def cached(self, instruction: str, example: Example) -> Score | None:
        """The answer the cache holds, without a call (None when it holds none)."""
        hit = self.cache.get(self._key(instruction, example))
        if hit is None:
            return None
        answer = str(hit[4]) if len(hit) > 4 else ""  # entries written before answers were kept
        return Score(
            float(hit[0]), hit[1], hit[2], 0.0, cached=True, model=str(hit[3]), answer=answer
        )

    async def score(self, instruction: str, example: Example) -> Score:
        key = self._key(instruction, example)
        hit = self.cached(instruction, example)
        if hit is not None:
            return hit
        score = await self.scorer.score(instruction, example)
        self.cache.put(
            key,
            [score.reward, score.prompt_tokens, score.completion_tokens, score.model, score.answer],
        )
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
        hit = self.cache.get(key)
        if hit is not None:
            return ProposalBatch(
                tuple(Proposal(text, origin, parent) for text, origin, parent in hit["proposals"]),
                calls=1,
                generated=int(hit["generated"]),
                duplicates=int(hit["duplicates"]),
                rejected=int(hit["rejected"]),
                cached_calls=1,
                model=str(hit["model"]),
                raw=tuple(str(text) for text in hit.get("raw", ())),
                reasons={str(k): int(v) for k, v in hit.get("reasons", {}).items()},
            )
        batch: ProposalBatch = await batch_of()
        self.cache.put(
            key,
            {
                "proposals": [[p.text, p.origin, p.parent] for p in batch.proposals],
                "generated": batch.generated,
                "duplicates": batch.duplicates,
                "rejected": batch.rejected,
                "model": batch.model,
                "raw": list(batch.raw),
                "reasons": batch.reasons,
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
