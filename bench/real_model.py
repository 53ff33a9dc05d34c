"""APE against the human instruction with a real model: SmolLM2-135M (or any GGUF file) as both
proposal and target model, on instruction-induction tasks (Honovich et al. 2022, as copied in
../shared/data/instruction_induction), the comparison of the APE paper's Figure 4 in miniature.

For each task and seed: one study (the engine's default policy, forward proposals from the induce
pool's demos, a scoring budget) against the local server; the study's final evaluation scores
its chosen instruction and the task's human instruction on the same held-out examples of the
execute split, with the same model and metric. Per task: the mean over seeds of each score with a
95 % interval (within-seed sampling error and between-seed spread together), and the calls
spent. Summary like the paper's: tasks where APE is at least as good as the human instruction,
and the interquartile mean of each over tasks. Log-probability scoring by default (the reward is
exp(mean token log-prob) of the accepted answer); ``--scoring exec`` for execution accuracy.

    .venv/bin/python bench/real_model.py                       # 8 tasks x 3 seeds, ~20 min
    .venv/bin/python bench/real_model.py --tasks antonyms sum --seeds 1   # quicker
    .venv/bin/python bench/real_model.py --model ~/models/qwen2.5-0.5b-instruct-q4_k_m.gguf

Writes bench/results/real_model.json and prints a Markdown table (the README quotes it).

``--formats`` measures instead how the answer is asked for on the chat API: the human
instruction's execution accuracy on each task's held-out examples under each chat format --
``plain`` (one user message), ``output-only`` (a system message asks for the output alone),
``plain+demos`` and ``output-only+demos`` (three demos of the demo pool as earlier turns) --
and how many tasks score above 0 under each (the engine's default format is chosen by it):

    nice -n 10 .venv/bin/python bench/real_model.py --formats --threads 1   # 24 tasks, ~15 min

``--system TEXT`` (repeatable) adds, in the same run, the two output-only formats with that
system message (`Templates.scoring_system`) in place of the default one; for every format the
bench also counts the answers that only repeat words of the system message (``echo``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from engine.app import StudyConfig, execute, prepare
from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.local import LocalSettings, serve_local
from engine.local.models import served_model_name
from engine.propose import Templates
from engine.study.prompting import ScoringPrompt, pick_demos
from engine.study.result import StudyResult
from engine.study.scoring import ClientScorer
from engine.task import load_task, split_task

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA = ROOT.parent.parent / "shared" / "data" / "instruction_induction" / "induce"
DEFAULT_TASKS = (
    "antonyms",
    "first_word_letter",
    "larger_animal",
    "letters_list",
    "singular_to_plural",
    "sum",
    "synonyms",
    "translation_en-es",
)


def task_path(spec: str) -> str:
    """A task name of the benchmark (its induce file), or any task file or built-in name."""
    candidate = DATA / f"{spec}.json"
    return str(candidate) if candidate.is_file() else spec


def half_width(low: float, high: float) -> float:
    return (high - low) / 2


def combine(scores: list[float], halves: list[float]) -> tuple[float, float]:
    """Mean over seeds, and the half-width of its 95 % interval: each seed's sampling error
    (its evaluation's interval) and the spread between seeds, added as variances."""
    mean = statistics.fmean(scores)
    within = statistics.fmean((h / 1.96) ** 2 for h in halves) / len(scores)
    between = statistics.variance(scores) / len(scores) if len(scores) > 1 else 0.0
    return mean, 1.96 * math.sqrt(within + between)


def interquartile_mean(values: list[float]) -> float:
    """Mean of the middle half (the paper's IQM): a quarter trimmed from each end, fractional
    weights at the cuts."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return float("nan")
    low, high = n / 4, 3 * n / 4
    total = weight = 0.0
    for index, value in enumerate(ordered):
        share = max(0.0, min(index + 1, high) - max(index, low))
        total += share * value
        weight += share
    return total / weight


async def run_study(config: StudyConfig) -> StudyResult:
    prepared = prepare(config)
    return await execute(prepared, say=lambda _: None)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    name = served_model_name(args.model)
    settings = LocalSettings(model=args.model, name=name, threads=args.threads, queue=256)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        async with serve_local(settings) as server:
            for spec in args.tasks:
                runs = []
                for seed in range(args.seeds):
                    config = StudyConfig.of(
                        task=task_path(spec),
                        model=name,
                        base_url=server.base_url,
                        api=args.api,
                        scoring=args.scoring,
                        seed=seed,
                        initial_candidates=args.initial_candidates,
                        variant_rounds=args.variant_rounds,
                        scoring_size=args.scoring_size,
                        test_size=args.test_size,
                        budget_scoring_calls=args.budget_calls,
                        concurrency=args.concurrency,
                        no_cache=True,
                        journal=str(Path(scratch) / f"{Path(spec).stem}-{seed}.jsonl"),
                    )
                    began = time.perf_counter()
                    result = await run_study(config)
                    if not result.ok or result.winner is None or result.human is None:
                        raise SystemExit(
                            f"{spec} seed {seed}: the study did not finish with a winner and a "
                            f"human baseline ({result.status}: {result.error or result.reason})"
                        )
                    runs.append(
                        {
                            "seed": seed,
                            "ape": result.winner.test_score,
                            "ape_ci": list(result.winner.test_ci),
                            "human": result.human.test_score,
                            "human_ci": list(result.human.test_ci),
                            "test_n": result.winner.n,
                            "instruction": result.winner.instruction,
                            "human_instruction": result.human.instruction,
                            "scoring_calls": result.spend.scoring_calls,
                            "proposal_calls": result.spend.proposal_calls,
                            "evaluation_calls": result.spend.evaluation_calls,
                            "candidates": len(result.candidates),
                            "seconds": time.perf_counter() - began,
                        }
                    )
                    print(
                        f"{spec} seed {seed}: APE {runs[-1]['ape']:.3f} human "
                        f"{runs[-1]['human']:.3f} ({runs[-1]['seconds']:.0f} s): "
                        f"{result.winner.instruction[:70]!r}",
                        flush=True,
                    )
                ape, ape_half = combine(
                    [r["ape"] for r in runs], [half_width(*r["ape_ci"]) for r in runs]
                )
                human, human_half = combine(
                    [r["human"] for r in runs], [half_width(*r["human_ci"]) for r in runs]
                )
                rows.append(
                    {
                        "task": Path(spec).stem,
                        "ape": ape,
                        "ape_half_width": ape_half,
                        "human": human,
                        "human_half_width": human_half,
                        "calls": statistics.fmean(
                            r["scoring_calls"] + r["proposal_calls"] for r in runs
                        ),
                        "evaluation_calls": statistics.fmean(r["evaluation_calls"] for r in runs),
                        "runs": runs,
                    }
                )
            model_file = server.local.model.path.name
    ape_scores = [row["ape"] for row in rows]
    human_scores = [row["human"] for row in rows]
    return {
        "model": model_file,
        "scoring": args.scoring,
        "api": args.api,
        "seeds": args.seeds,
        "settings": {
            "initial_candidates": args.initial_candidates,
            "variant_rounds": args.variant_rounds,
            "scoring_size": args.scoring_size,
            "test_size": args.test_size,
            "budget_calls": args.budget_calls,
            "concurrency": args.concurrency,
        },
        "tasks": rows,
        "summary": {
            "tasks": len(rows),
            "ape_at_least_human": sum(r["ape"] >= r["human"] for r in rows),
            "ape_iqm": interquartile_mean(ape_scores),
            "human_iqm": interquartile_mean(human_scores),
        },
        "seconds": time.perf_counter() - started,
    }


#: name -> (chat format, scoring demos)
FORMATS = {
    "plain": ("plain", 0),
    "output-only": ("output-only", 0),
    "plain+demos": ("plain", 3),
    "output-only+demos": ("output-only", 3),
}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def echoes(answer: str, system: str) -> bool:
    """An answer of three or more words that are a run of the system message's words."""
    words, said = _words(answer), " ".join(_words(system))
    return len(words) >= 3 and f" {' '.join(words)} " in f" {said} "


def formats(systems: list[str]) -> dict[str, tuple[str, int, str | None]]:
    """name -> (chat format, scoring demos, system message or None for the default): the
    four formats, then the output-only ones again with each of `systems`."""
    chosen: dict[str, tuple[str, int, str | None]] = {
        name: (chat_format, demos, None) for name, (chat_format, demos) in FORMATS.items()
    }
    for number, system in enumerate(systems, start=1):
        chosen[f"output-only/s{number}"] = ("output-only", 0, system)
        chosen[f"output-only+demos/s{number}"] = ("output-only", 3, system)
    return chosen


async def formats_bench(args: argparse.Namespace) -> dict[str, Any]:
    """The human instruction's execution accuracy under each chat format, per task."""
    chosen = formats(args.system)
    name = served_model_name(args.model)
    settings = LocalSettings(model=args.model, name=name, threads=args.threads, queue=256)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    async with serve_local(settings) as server:
        endpoint = EndpointConfig(name="target", base_url=server.base_url, model=name)
        async with LLMClient(endpoint) as client:
            for spec in args.tasks:
                task = load_task(task_path(spec), seed=0)
                splits = split_task(task, seed=0, test_size=args.test_size)
                human = task.human_instruction or ""
                row: dict[str, Any] = {
                    "task": task.name, "n": len(splits.test), "answers": {}, "echo": {}
                }  # fmt: skip
                for label, (chat_format, demos, system) in chosen.items():
                    templates = Templates() if system is None else Templates(scoring_system=system)
                    asking = ScoringPrompt(
                        templates, pick_demos(splits.demo, demos, 0), chat_format
                    )
                    scorer = ClientScorer(client, metric=task.metric, asking=asking)
                    scores = [await scorer.score(human, example) for example in splits.test]
                    row[label] = statistics.fmean(s.reward for s in scores)
                    row["answers"][label] = [s.answer for s in scores[:3]]
                    said = templates.scoring_system if chat_format == "output-only" else ""
                    row["echo"][label] = sum(echoes(s.answer, said) for s in scores) / len(scores)
                rows.append(row)
                print(f"{task.name}: " + "  ".join(f"{k} {row[k]:.2f}" for k in chosen), flush=True)
            model_file = server.local.model.path.name
    return {
        "model": model_file,
        "test_size": args.test_size,
        "tasks": rows,
        "formats": list(chosen),
        "systems": args.system,
        "above_zero": {label: sum(row[label] > 0 for row in rows) for label in chosen},
        "mean": {label: statistics.fmean(row[label] for row in rows) for label in chosen},
        "echo": {label: statistics.fmean(row["echo"][label] for row in rows) for label in chosen},
        "seconds": time.perf_counter() - started,
    }


def formats_table(report: dict[str, Any]) -> str:
    names = report.get("formats", list(FORMATS))
    lines = ["| task | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row in report["tasks"]:
        lines.append(f"| {row['task']} | " + " | ".join(f"{row[k]:.2f}" for k in names) + " |")
    above, mean = report["above_zero"], report["mean"]
    count = len(report["tasks"])
    lines.append(
        "| **tasks above 0** | " + " | ".join(f"**{above[k]} / {count}**" for k in names) + " |"
    )
    lines.append("| **mean** | " + " | ".join(f"**{mean[k]:.3f}**" for k in names) + " |")
    if "echo" in report:
        echo = report["echo"]
        lines.append("| answers repeating the system message | "
                     + " | ".join(f"{echo[k]:.1%}" for k in names) + " |")  # fmt: skip
    lines.append("")
    for number, system in enumerate(report.get("systems", []), start=1):
        lines.append(f"s{number}: {system!r}")
    lines.append(
        f"Human instruction, execution accuracy on {report['test_size']} held-out examples per "
        f"task; {report['model']}, {report['seconds'] / 60:.1f} min."
    )
    return "\n".join(lines)


def table(report: dict[str, Any]) -> str:
    unit = "exp(mean log-prob)" if report["scoring"] == "logprob" else "execution accuracy"
    lines = [
        f"| task | APE ({unit}) | human | calls / study (search + proposals) |",
        "|---|---|---|---|",
    ]
    for row in report["tasks"]:
        lines.append(
            f"| {row['task']} | {row['ape']:.3f} ± {row['ape_half_width']:.3f} | "
            f"{row['human']:.3f} ± {row['human_half_width']:.3f} | {row['calls']:.0f} |"
        )
    summary = report["summary"]
    lines.append(
        f"| **IQM over {summary['tasks']} tasks** | **{summary['ape_iqm']:.3f}** | "
        f"**{summary['human_iqm']:.3f}** | |"
    )
    lines.append("")
    lines.append(
        f"APE >= human on {summary['ape_at_least_human']} of {summary['tasks']} tasks; "
        f"{report['model']}, {report['seeds']} seeds per task, {report['seconds'] / 60:.1f} min."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS),
                        help="benchmark task names, task files or built-in tasks (8 by default)")  # fmt: skip
    parser.add_argument("--model", default="smollm2", help="GGUF file or smollm2")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scoring", choices=("logprob", "exec"), default="logprob")
    parser.add_argument("--api", choices=("chat", "completions"), default="completions",
                        help="API for proposals (and exec scoring): completions")  # fmt: skip
    parser.add_argument("--initial-candidates", type=int, default=10)
    parser.add_argument("--variant-rounds", type=int, default=1)
    parser.add_argument("--scoring-size", type=int, default=30)
    parser.add_argument("--test-size", type=int, default=40)
    parser.add_argument("--budget-calls", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", default=None, help="bench/results/real_model[_formats].json")
    parser.add_argument("--formats", action="store_true",
                        help="the human instruction under each chat format instead")  # fmt: skip
    parser.add_argument("--system", action="append", default=[], metavar="TEXT",
                        help="with --formats: the output-only formats with this system message too")  # fmt: skip
    args = parser.parse_args(argv)
    if args.formats:
        if args.tasks == list(DEFAULT_TASKS):
            args.tasks = sorted(p.stem for p in DATA.glob("*.json"))
        report = anyio.run(formats_bench, args)
        out = Path(args.out or RESULTS / "real_model_formats.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(formats_table(report))
        print(f"written to {out}")
        return 0
    args.out = args.out or str(RESULTS / "real_model.json")
    if not DATA.is_dir() and any(spec in DEFAULT_TASKS for spec in args.tasks):
        print(f"note: benchmark data not found at {DATA}; task names must be files or built-ins")
    report = anyio.run(bench, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
