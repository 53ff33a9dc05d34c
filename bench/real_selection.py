"""The scheduler's worth on a real model: SmolLM2-135M through the local backend, on the 24
instruction-induction tasks (Honovich et al. 2022, ../shared/data/instruction_induction).

For each task, a fixed pool of at least 20 candidates: the task's human instruction, SmolLM2's
own forward proposals, paraphrases of the human instruction and distractors, both written by rule
(`paraphrases`, `distractors`). Every candidate is scored once on every example of the scoring
pool with log-probability scoring (exp(mean token log-prob) of the accepted output: continuous
rewards), which gives each candidate's true score on the pool and the true best.

Then, for each policy and seed, a real `Study` (the engine's dispatcher, monitor, policy and
budgets; the candidates given as the user's own, origin "user", no proposal calls) runs
against a scorer that reads the recorded rewards of that one full evaluation -- the same
rewards the model gives, deterministically, for the same (instruction, example) -- rather than
calling the model again. Per policy: the share of runs whose pick is within epsilon of the true
best on the pool, and the scoring calls as a share of full evaluation (candidates x pool size).
`lucb`, `ttts` and `halving` get 10 % of full evaluation as their budget; `lucb` also runs to
its own stopping rule (`lucb-stop`, with the 10 % budget as well as a cap at 35 %), and the
paper's filter (`ape-filter`) runs at its own cost, on the same pools and seeds.

    nice -n 10 .venv/bin/python bench/real_selection.py                  # 24 tasks, ~30 min
    .venv/bin/python bench/real_selection.py --tasks antonyms sum --seeds 3   # quicker
    .venv/bin/python bench/real_selection.py --reuse                     # studies only

The full evaluation is kept in bench/results/real_selection_rewards.json (``--reuse`` reads it
instead of calling the model); the report goes to bench/results/real_selection.json and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.local import LocalSettings, serve_local
from engine.local.models import served_model_name
from engine.propose import Proposer, instruction_key
from engine.study.scoring import ClientScorer
from engine.task import Task, load_task, split_task
from engine.task.types import Example

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA = ROOT.parent.parent / "shared" / "data" / "instruction_induction" / "induce"
TASKS = tuple(sorted(p.stem for p in DATA.glob("*.json"))) if DATA.is_dir() else ()
POLICIES = ("lucb", "ttts", "halving", "lucb-stop", "ape-filter")
POOL_MIN = 20


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() or len(text) < 2 else text


def paraphrases(human: str) -> list[str]:
    """Rewordings of the human instruction by fixed rules (the same meaning, other words)."""
    bare = human.rstrip(" .")
    return [
        f"Please {_lower_first(human)}",
        f"Your task: {human}",
        f"Instruction: {human}",
        f"{bare}. Answer with the output only.",
        f"Read the input. {human}",
        f"For every input, {_lower_first(human)}",
        f"{bare}. Be brief.",
    ]


GENERIC_DISTRACTORS = (
    "Repeat the input word for word.",
    "Write the input backwards.",
    "Translate the input into Italian.",
    "Count the letters of the input.",
    "Answer with yes or no.",
)


def distractors(task: str, humans: dict[str, str], count: int) -> list[str]:
    """Instructions for something else: generic ones, then the human instructions of other
    tasks (the next ones in alphabetical order, so every run builds the same pool)."""
    names = sorted(humans)
    start = names.index(task) if task in names else 0
    others = [humans[names[(start + step) % len(names)]] for step in range(1, len(names))]
    return (list(GENERIC_DISTRACTORS) + others)[:count]


def _unique(texts: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for text in texts:
        key = instruction_key(text)
        if key and key not in seen:
            seen.add(key)
            kept.append(text)
    return kept


def load(name: str, scoring_size: int) -> tuple[Task, tuple[Example, ...], tuple[Example, ...]]:
    """The task, its demo pool and its scoring pool (seed 0, as every study here uses)."""
    task = load_task(str(DATA / f"{name}.json"), seed=0)
    splits = split_task(task, seed=0, scoring_size=scoring_size, demo_size=50, test_size=10)
    return task, splits.demo, splits.scoring


async def own_proposals(client: LLMClient, demos: tuple[Example, ...], calls: int) -> list[str]:
    """SmolLM2's forward proposals (completions template, 5 per call), cleaned."""
    proposer = Proposer(client, demos, api="completions", seed=0)
    texts: list[str] = []
    for _ in range(calls):
        batch = await proposer.propose(5)
        texts += [p.text for p in batch.proposals]
    return texts


async def full_evaluation(
    client: LLMClient, candidates: list[str], pool: tuple[Example, ...], metric: str
) -> list[list[float]]:
    """rewards[candidate][example]: every candidate on every example of the pool, once."""
    scorer = ClientScorer(client, metric=metric, mode="logprob", api="completions")
    rewards = []
    for instruction in candidates:
        row = []
        for example in pool:
            row.append((await scorer.score(instruction, example)).reward)
        rewards.append(row)
    return rewards


async def record(args: argparse.Namespace) -> dict[str, Any]:
    """The pools and their full evaluation, task by task (the model's part of the bench),
    written after each task; tasks already in the file are kept, not evaluated again."""
    humans = {name: load(name, args.scoring_size)[0].human_instruction or "" for name in TASKS}
    name = served_model_name(args.model)
    settings = LocalSettings(model=args.model, name=name, threads=args.threads, queue=256)
    path = Path(args.rewards)
    recorded: dict[str, Any] = {"model": name, "scoring_size": args.scoring_size, "tasks": {}}
    if path.is_file():
        recorded = json.loads(path.read_text())
    async with serve_local(settings) as server:
        endpoint = EndpointConfig(name="target", base_url=server.base_url, model=name)
        async with LLMClient(endpoint) as client:
            for task_name in args.tasks:
                if task_name in recorded["tasks"]:
                    continue
                began = time.perf_counter()
                task, demos, pool = load(task_name, args.scoring_size)
                human = task.human_instruction or ""
                own = await own_proposals(client, demos, args.proposal_calls)
                pool_texts = _unique([human, *own[: args.own_max], *paraphrases(human)])
                missing = max(args.pool - len(pool_texts), POOL_MIN - len(pool_texts), 0)
                pool_texts = _unique(pool_texts + distractors(task_name, humans, missing + 3))
                pool_texts = pool_texts[: max(args.pool, POOL_MIN)]
                rewards = await full_evaluation(client, pool_texts, pool, task.metric)
                recorded["tasks"][task_name] = {
                    "candidates": pool_texts,
                    "own": [t for t in pool_texts if t in own],
                    "inputs": [example.input for example in pool],
                    "rewards": rewards,
                    "seconds": time.perf_counter() - began,
                }
                recorded["model_file"] = server.local.model.path.name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(recorded) + "\n")
                print(
                    f"{task_name}: {len(pool_texts)} candidates x {len(pool)} examples "
                    f"({time.perf_counter() - began:.0f} s)",
                    flush=True,
                )
    return recorded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--model", default="smollm2", help="GGUF file or smollm2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scoring-size", type=int, default=50)
    parser.add_argument("--pool", type=int, default=24, help="candidates per task (>= 20)")
    parser.add_argument("--proposal-calls", type=int, default=2)
    parser.add_argument("--own-max", type=int, default=8, help="most own proposals per pool")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="read the recorded evaluation")
    parser.add_argument("--rewards", default=str(RESULTS / "real_selection_rewards.json"))
    parser.add_argument("--out", default=str(RESULTS / "real_selection.json"))
    args = parser.parse_args(argv)
    rewards_path = Path(args.rewards)
    if args.reuse:
        recorded = json.loads(rewards_path.read_text())
    else:
        recorded = anyio.run(record, args)
    print(f"recorded evaluation in {rewards_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
