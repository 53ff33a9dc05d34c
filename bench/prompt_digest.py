"""One digest of what the engine sends for the text tasks, to check that a change sends the
same: the scoring prompts (completions, and chat with three scoring demos), the response
cache's keys of scoring calls, the proposer's identity and demos, and the fingerprint, of the
24 instruction-induction tasks (when ../shared/data holds them) and the built-in tasks.

    .venv/bin/python bench/prompt_digest.py                       # this checkout
    PYTHONPATH=../other/checkout .venv/bin/python bench/prompt_digest.py   # another version

Two versions that print the same digest send the same prompts, keep the same cache keys and
resume each other's journals of these tasks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine.app.scoring import build_scorer
from engine.propose import Proposer, Templates
from engine.settings import StudyConfig
from engine.study.cache import ResponseCache
from engine.study.prompting import ScoringPrompt, pick_demos
from engine.task import builtin_task_names, load_task, split_task
from engine.task.fingerprint import task_fingerprint

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "instruction_induction" / "induce"
INSTRUCTION = "Do it."
EXAMPLES = 20


class _Client:
    """Never called: the scorer and proposer are only asked what they would send."""

    model = "m"
    name = "target"
    limiter = None


def _key(scorer: Any, example: Any) -> str:
    arguments = scorer._key.__code__.co_argcount  # (instruction, example[, demos])
    extra = (None,) * (arguments - 3)
    return str(scorer._key(INSTRUCTION, example, *extra))


def digest_of(spec: str, digest: Any, cache: ResponseCache) -> None:
    task = load_task(spec, seed=0)
    splits = split_task(task, seed=0)
    digest.update(task_fingerprint(task).encode())
    scoring = StudyConfig.of(task="sum").scoring
    for api, demos in (("chat", 3), ("completions", 0)):
        asking = ScoringPrompt(Templates(), pick_demos(splits.demo, demos, 0), "output-only")
        scorer = asyncio.run(
            build_scorer(scoring, _Client(), api=api, model="m", seed=0, metric=task.metric,  # type: ignore[arg-type]
                         templates=Templates(), cache=cache, endpoint="u", demos=splits.demo)
        )  # fmt: skip
        for example in splits.scoring[:EXAMPLES]:
            digest.update(asking.completion(INSTRUCTION, example.input).encode())
            digest.update(json.dumps(asking.messages(INSTRUCTION, example.input)).encode())
            digest.update(_key(scorer, example).encode())
    proposer = Proposer(_Client(), splits.demo, seed=0)  # type: ignore[arg-type]
    digest.update(json.dumps(proposer.identity(), sort_keys=True).encode())
    for _ in range(3):
        digest.update(proposer.sample_demos().encode())


def main() -> int:
    specs = [str(p) for p in sorted(DATA.glob("*.json"))] + list(builtin_task_names())
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as folder:
        cache = ResponseCache(Path(folder) / "cache.sqlite3", say=lambda _: None)
        for spec in specs:
            digest_of(spec, digest, cache)
        cache.close()
    print(f"{len(specs)} tasks: {digest.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
