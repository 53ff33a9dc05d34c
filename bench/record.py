"""Record a model's full evaluation of fixed candidate pools on the 24 instruction-induction
tasks (Honovich et al. 2022, ../shared/data/instruction_induction), as a recording that selection
benches replay without the model (format: bench/recording.py, bench/recordings/README.md).

For each task, a pool of at least 20 candidates: the task's human instruction, the model's own
forward proposals (up to `--own-max`), paraphrases of the human instruction and distractors (both
written by rule); or the pools of another recording (`--pools-from`, the same candidates scored
another way). Every candidate is scored once on every example of the scoring pool:

- ``--scoring logprob``: exp(mean token log-prob) of the accepted output by completions echo, no
  demos (continuous rewards);
- ``--scoring exec``: the greedy chat answer in the engine's default format (a system message
  asking for the output only, three demos of the demo pool as earlier turns) against the task's
  metric (0/1 for most tasks).

The file is rewritten after every candidate, so a run stopped at any point resumes where it was:

    nice -n 10 .venv/bin/python bench/record.py --model smollm2 --scoring logprob
    nice -n 10 .venv/bin/python bench/record.py --model smollm2 --scoring exec \\
        --pools-from bench/recordings/smollm2-logprob.json.gz
    nice -n 10 .venv/bin/python bench/record.py \\
        --model ~/.cache/ape-engine/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --scoring exec
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.local import LocalSettings, serve_local
from engine.local.models import served_model_name
from engine.propose import Proposer, Templates, instruction_key
from engine.study.prompting import ScoringPrompt, pick_demos
from engine.study.scoring import ClientScorer
from engine.task import Task, load_task, split_task
from engine.task.types import Example

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recording import FORMAT, RECORDINGS, read, write

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "instruction_induction" / "induce"
TASKS = tuple(sorted(p.stem for p in DATA.glob("*.json"))) if DATA.is_dir() else ()
POOL_MIN = 20
DECIMALS = 4
SPLIT = {"seed": 0, "demo_size": 50, "test_size": 10}


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


def load(name: str, scoring_size: int) -> tuple[Task, tuple[Example, ...], tuple[Example, ...]]:
    """The task, its demo pool and its scoring pool (seed 0, as every recording uses)."""
    task = load_task(str(DATA / f"{name}.json"), seed=0)
    splits = split_task(task, scoring_size=scoring_size, **SPLIT)
    return task, splits.demo, splits.scoring


def build_pool(
    name: str, human: str, own: list[str], humans: dict[str, str], size: int, own_max: int
) -> tuple[list[str], list[str]]:
    """Candidates and their origins: the human instruction, own proposals, paraphrases, then
    distractors up to `size` (at least POOL_MIN); exact copies (`instruction_key`) dropped."""
    size = max(size, POOL_MIN)
    seen: set[str] = set()
    texts: list[str] = []
    origins: list[str] = []

    def add(text: str, origin: str) -> None:
        key = instruction_key(text)
        if key and key not in seen and len(texts) < size:
            seen.add(key)
            texts.append(text)
            origins.append(origin)

    add(human, "human")
    for text in own[:own_max]:
        add(text, "own")
    for text in paraphrases(human):
        add(text, "paraphrase")
    for text in distractors(name, humans, len(humans) + len(GENERIC_DISTRACTORS)):
        add(text, "distractor")
    return texts, origins


async def own_proposals(
    client: LLMClient, demos: tuple[Example, ...], calls: int, api: str
) -> list[str]:
    """The model's forward proposals (5 per call), cleaned."""
    proposer = Proposer(client, demos, api=api, seed=0)
    texts: list[str] = []
    for _ in range(calls):
        batch = await proposer.propose(5)
        texts += [p.text for p in batch.proposals]
    return texts


def scorer(client: LLMClient, scoring: str, metric: str, demos: tuple[Example, ...]) -> Any:
    if scoring == "logprob":
        return ClientScorer(client, metric=metric, mode="logprob", api="completions")
    asking = ScoringPrompt(Templates(), pick_demos(demos, 3, SPLIT["seed"]), "output-only")
    return ClientScorer(client, metric=metric, asking=asking)


async def score_row(
    client_scorer: Any, instruction: str, pool: tuple[Example, ...], parallel: int
) -> list[float]:
    """One candidate on every example; `parallel` calls wait at the server at once, so the
    model never idles between calls (the server runs them one after another, sharing the
    candidate's prefix)."""
    row: list[float] = [0.0] * len(pool)
    limiter = anyio.CapacityLimiter(parallel)

    async def one(index: int, example: Example) -> None:
        async with limiter:
            reward = (await client_scorer.score(instruction, example)).reward
            row[index] = round(float(reward), DECIMALS)

    async with anyio.create_task_group() as group:
        for index, example in enumerate(pool):
            group.start_soon(one, index, example)
    return row


def header(args: argparse.Namespace, model_file: str) -> dict[str, Any]:
    exec_mode = args.scoring == "exec"
    return {
        "format": FORMAT,
        "model": served_model_name(args.model),
        "model_file": model_file,
        "scoring": args.scoring,
        "api": "chat" if exec_mode else "completions",
        "chat_format": "output-only" if exec_mode else None,
        "scoring_demos": 3 if exec_mode else 0,
        "data": "instruction_induction/induce",
        "split": {**SPLIT, "scoring_size": args.scoring_size},
        "decimals": DECIMALS,
        "tasks": {},
    }


async def record_task(
    client: LLMClient, args: argparse.Namespace, data: dict[str, Any], name: str, pools: Any
) -> None:
    began = time.perf_counter()
    task, demos, pool = load(name, args.scoring_size)
    entry = data["tasks"].get(name)
    if entry is None:
        if pools is not None:
            candidates, origins = pools[name]["candidates"], pools[name]["origins"]
        else:
            humans = {t: load(t, args.scoring_size)[0].human_instruction or "" for t in TASKS}
            own = await own_proposals(client, demos, args.proposal_calls, args.proposal_api)
            candidates, origins = build_pool(
                name, task.human_instruction or "", own, humans, args.pool, args.own_max
            )
        entry = {
            "metric": task.metric,
            "candidates": candidates,
            "origins": origins,
            "examples": [example.key for example in pool],
            "rewards": [],
            "complete": False,
            "seconds": 0.0,
        }
        data["tasks"][name] = entry
    keys = [example.key for example in pool]
    if entry["examples"] != keys:
        raise SystemExit(f"{args.out}: task {name}'s examples are not this split's; start anew")
    client_scorer = scorer(client, args.scoring, task.metric, demos)
    for instruction in entry["candidates"][len(entry["rewards"]) :]:
        entry["rewards"].append(await score_row(client_scorer, instruction, pool, args.parallel))
        entry["seconds"] += time.perf_counter() - began
        began = time.perf_counter()
        write(args.out, data)
    entry["complete"] = True
    write(args.out, data)
    print(
        f"{name}: {len(entry['candidates'])} x {len(pool)} ({entry['seconds']:.0f} s)", flush=True
    )


async def record(args: argparse.Namespace) -> None:
    data = read(args.out) if args.out.is_file() else None
    pools = read(args.pools_from)["tasks"] if args.pools_from else None
    name = served_model_name(args.model)
    settings = LocalSettings(model=args.model, name=name, threads=args.threads, queue=256)
    async with serve_local(settings) as server:
        if data is None:
            data = header(args, server.local.model.path.name)
        endpoint = EndpointConfig(name="target", base_url=server.base_url, model=name)
        async with LLMClient(endpoint) as client:
            for task_name in args.tasks:
                entry = data["tasks"].get(task_name)
                if entry is None or not entry["complete"]:
                    await record_task(client, args, data, task_name, pools)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="GGUF file or smollm2")
    parser.add_argument("--scoring", choices=("logprob", "exec"), default="logprob")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scoring-size", type=int, default=40)
    parser.add_argument("--pool", type=int, default=24, help="candidates per task (>= 20)")
    parser.add_argument("--proposal-calls", type=int, default=2)
    parser.add_argument("--proposal-api", choices=("chat", "completions"), default="completions")
    parser.add_argument("--own-max", type=int, default=8, help="most own proposals per pool")
    parser.add_argument("--parallel", type=int, default=4, help="calls waiting at the server")
    parser.add_argument("--pools-from", type=Path, help="take the pools of this recording")
    parser.add_argument("--out", type=Path, help="default: bench/recordings/<model>-<scoring>")
    args = parser.parse_args(argv)
    if not TASKS:
        parser.error(f"no task files in {DATA}")
    if args.out is None:
        args.out = RECORDINGS / f"{served_model_name(args.model)}-{args.scoring}.json.gz"
    anyio.run(record, args)
    print(f"recorded in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
