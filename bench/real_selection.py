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
its own stopping rule with a budget of 35 % (`lucb-stop`), and the paper's filter
(`ape-filter`) runs at its own cost, on the same pools and seeds; a random pick is the baseline
that says how close the pool's rewards are.

    nice -n 10 .venv/bin/python bench/real_selection.py                  # 24 tasks, ~70 min
    .venv/bin/python bench/real_selection.py --tasks antonyms sum --seeds 3   # quicker
    .venv/bin/python bench/real_selection.py --reuse                     # studies only

The full evaluation is kept in bench/results/real_selection_rewards.json (``--reuse`` reads it
instead of calling the model); the report goes to bench/results/real_selection.json and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from engine.errors import EndpointError
from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.local import LocalSettings, serve_local
from engine.local.models import served_model_name
from engine.propose import Proposer, UserCandidate, instruction_key
from engine.search import make_policy
from engine.settings import StudyConfig
from engine.study.scoring import ClientScorer, Score
from engine.study.shared import StudySetup
from engine.study.study import Study
from engine.task import Splits, Task, load_task, split_task
from engine.task.types import Example

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA = ROOT.parent.parent / "shared" / "data" / "instruction_induction" / "induce"
TASKS = tuple(sorted(p.stem for p in DATA.glob("*.json"))) if DATA.is_dir() else ()
POLICIES = ("lucb", "ttts", "halving", "lucb-stop", "ape-filter")
POOL_MIN = 20
STRICT = 0.01  # a tighter tolerance than the engine's default, reported beside it


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


def save(path: Path, recorded: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recorded) + "\n")


async def record(args: argparse.Namespace, recorded: dict[str, Any]) -> dict[str, Any]:
    """The pools and their full evaluation, task by task (the model's part of the bench),
    written after each task; tasks already in `recorded` are kept, not evaluated again."""
    humans = {name: load(name, args.scoring_size)[0].human_instruction or "" for name in TASKS}
    name = served_model_name(args.model)
    settings = LocalSettings(model=args.model, name=name, threads=args.threads, queue=256)
    path = Path(args.rewards)
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
                save(path, recorded)
                print(
                    f"{task_name}: {len(pool_texts)} candidates x {len(pool)} examples "
                    f"({time.perf_counter() - began:.0f} s)",
                    flush=True,
                )
    return recorded


# -- the studies, against the recorded rewards ------------------------------------------------------


class RecordedScorer:
    """The reward the model gave `instruction` on `example` in the full evaluation: the same
    number a call would return (log-probability scoring is deterministic), without the call."""

    def __init__(self, candidates: list[str], rewards: list[list[float]]) -> None:
        self._row = {text: index for index, text in enumerate(candidates)}
        self._rewards = rewards

    async def score(self, instruction: str, example: Example) -> Score:
        await anyio.lowlevel.checkpoint()
        return Score(self._rewards[self._row[instruction]][int(example.key)])


class NoProposals:
    """The pool is fixed: a study of the user's own candidates makes no proposal call."""

    async def propose(self, count: int) -> Any:
        raise EndpointError("this bench makes no proposal call")

    async def vary(self, parent_text: str, parent_id: int, n: int) -> Any:
        raise EndpointError("this bench makes no proposal call")


def _plan(policy: str, full: int) -> tuple[str, int | None]:
    """(engine policy, scoring-call budget) of a bench policy."""
    if policy == "lucb-stop":
        return "lucb", int(0.35 * full)
    if policy == "ape-filter":
        return "ape-filter", None
    return policy, max(1, int(0.1 * full))


async def one_study(name: str, entry: dict[str, Any], policy: str, seed: int) -> dict[str, Any]:
    """One real `Study` over the task's fixed pool; its pick and its cost."""
    candidates, rewards = entry["candidates"], entry["rewards"]
    pool = tuple(Example(x, ("",), key=str(i)) for i, x in enumerate(entry["inputs"]))
    full = len(candidates) * len(pool)
    engine_policy, budget = _plan(policy, full)
    config = StudyConfig.of(
        task=name,
        policy=engine_policy,
        seed=seed,
        initial_candidates=0,
        variant_rounds=0,
        budget_scoring_calls=budget,
        concurrency=8,
        no_cache=True,
    )
    settings = config.study()
    settings = dataclasses.replace(
        settings,
        proposals=dataclasses.replace(settings.proposals, user_candidates=len(candidates)),
    )
    setup = StudySetup(
        settings=settings,
        task=Task(name, pool),
        splits=Splits(demo=pool[:1], scoring=pool, test=()),
        policy=make_policy(engine_policy, n=len(pool), seed=seed, initial_arms=len(candidates)),
        scorer=RecordedScorer(candidates, rewards),
        proposer=NoProposals(),
        user_candidates=tuple(UserCandidate(text) for text in candidates),
    )
    result = await Study(setup).run()
    means = [statistics.fmean(row) for row in rewards]
    epsilon = max(2 / len(pool), 0.005)  # the engine's default
    pick = result.winner_arm
    return {
        "policy": policy,
        "seed": seed,
        "pick": pick,
        "good": pick is not None and means[pick] >= max(means) - epsilon,
        "good_strict": pick is not None and means[pick] >= max(means) - STRICT,
        "gap": max(means) - (means[pick] if pick is not None else 0.0),
        "cost": result.spend.scoring_calls / full,
        "reason": result.reason,
    }


async def studies(recorded: dict[str, Any], seeds: int) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    limiter = anyio.CapacityLimiter(32)  # studies at once: their monitors tick in parallel

    async def run(name: str, entry: dict[str, Any], policy: str, seed: int) -> None:
        async with limiter:
            runs.append({"task": name, **await one_study(name, entry, policy, seed)})

    async with anyio.create_task_group() as group:
        for name, entry in recorded["tasks"].items():
            for policy in POLICIES:
                for seed in range(seeds):
                    group.start_soon(run, name, entry, policy, seed)
    return runs


def summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    rows = {}
    for policy in POLICIES:
        mine = [run for run in runs if run["policy"] == policy]
        rows[policy] = {
            "runs": len(mine),
            "good_share": statistics.fmean(run["good"] for run in mine),
            "strict_share": statistics.fmean(run["good_strict"] for run in mine),
            "cost_mean": statistics.fmean(run["cost"] for run in mine),
            "cost_max": max(run["cost"] for run in mine),
            "gap_mean": statistics.fmean(run["gap"] for run in mine),
            "gap_max": max(run["gap"] for run in mine),
            "stopped_by_rule": statistics.fmean("stopping rule" in run["reason"] for run in mine),
        }
    return rows


def random_pick(recorded: dict[str, Any]) -> dict[str, float]:
    """The baseline: a pick uniformly at random from the pool, for nothing. Its chance of being
    epsilon-good says how hard the pool is (rewards closer than epsilon make any pick good)."""
    good, strict, gaps, spans = [], [], [], []
    for entry in recorded["tasks"].values():
        means = [statistics.fmean(row) for row in entry["rewards"]]
        best, epsilon = max(means), max(2 / len(entry["inputs"]), 0.005)
        good.append(statistics.fmean(m >= best - epsilon for m in means))
        strict.append(statistics.fmean(m >= best - STRICT for m in means))
        gaps.append(statistics.fmean(best - m for m in means))
        spans.append(best - min(means))
    return {
        "runs": 0,
        "good_share": statistics.fmean(good),
        "strict_share": statistics.fmean(strict),
        "cost_mean": 0.0,
        "cost_max": 0.0,
        "gap_mean": statistics.fmean(gaps),
        "gap_max": max(spans),
        "span_median": statistics.median(spans),
    }


def table(report: dict[str, Any]) -> str:
    label = {
        "lucb": "lucb, budget 10 %",
        "ttts": "ttts, budget 10 %",
        "halving": "halving, budget 10 %",
        "lucb-stop": "lucb, its stopping rule (cap 35 %)",
        "ape-filter": "ape-filter (the paper's), its own cost",
        "random": "a random pick (no scoring call), expected",
    }
    lines = [
        "| policy | runs | pick epsilon-good on the pool | within 0.01 | cost / full evaluation "
        "(mean, max) | gap to the best (mean, max) |",
        "|---|---|---|---|---|---|",
    ]
    for policy, row in report["summary"].items():
        lines.append(
            f"| {label[policy]} | {row['runs']} | {row['good_share']:.1%} | "
            f"{row['strict_share']:.1%} | "
            f"{row['cost_mean']:.3f}, {row['cost_max']:.3f} | "
            f"{row['gap_mean']:.4f}, {row['gap_max']:.4f} |"
        )
    lines.append("")
    lines.append(
        f"{report['tasks']} tasks x {report['seeds']} seeds; pools of {report['pool_min']}-"
        f"{report['pool_max']} candidates on scoring pools of {report['scoring_min']}-"
        f"{report['scoring_max']} examples, epsilon max(2 / n, 0.005) per task (0.05 at n = 40); "
        f"rewards recorded from {report['model']}."
    )
    return "\n".join(lines)


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
    recorded: dict[str, Any] = {"model": args.model, "scoring_size": args.scoring_size, "tasks": {}}
    if rewards_path.is_file():
        recorded = json.loads(rewards_path.read_text())
    if not args.reuse:
        recorded = anyio.run(record, args, recorded)
    print(f"recorded evaluation in {rewards_path}")
    if args.tasks != list(TASKS):
        recorded["tasks"] = {k: v for k, v in recorded["tasks"].items() if k in args.tasks}
    began = time.perf_counter()
    runs = anyio.run(studies, recorded, args.seeds)
    sizes = [len(entry["candidates"]) for entry in recorded["tasks"].values()]
    scoring = [len(entry["inputs"]) for entry in recorded["tasks"].values()]
    report = {
        "model": recorded.get("model_file", recorded["model"]),
        "tasks": len(recorded["tasks"]),
        "task_names": sorted(recorded["tasks"]),
        "seeds": args.seeds,
        "scoring_min": min(scoring),
        "scoring_max": max(scoring),
        "pool_min": min(sizes),
        "pool_max": max(sizes),
        "summary": {**summary(runs), "random": random_pick(recorded)},
        "runs": runs,
        "study_seconds": time.perf_counter() - began,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
