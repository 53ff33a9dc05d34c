"""Sending each candidate's calls back to back: what a server's prefix cache gives a study.

A scoring prompt is the template and the candidate's instruction (with `scoring_demos`, the demos
after it), then one example's input. Servers keep the key-value cache of prompt prefixes they have
just seen (llama.cpp reuses the previous call's common prefix; vLLM and SGLang cache prefixes and
evict the least recently used), so calls of one candidate run back to back cost less than the
same calls interleaved with other candidates'. Two things order the calls: the study sends the
pulls it chooses together candidate by candidate (`group_by_candidate`), and the local model
runs next the waiting call with the longest prefix shared with the call just run
(`ape-engine local --order prefix`). Parts, each in this process:

(model) SmolLM2-135M alone, one thread, no study: 8 candidates x 15 examples of log-probability
    scoring, run candidate by candidate and then strictly interleaved (the most the order can
    give). Reported: calls per second, and the share of prompt tokens evaluated.
(local) whole studies on SmolLM2 through `ape-engine local`'s server, one thread, log-probability
    scoring (the prompt is all the work), 8 calls in flight; proposals from the simulator so that
    only scoring runs on the model. Each (grouping, server order) on the same seeds, with 0 and
    with 3 scoring demos; the baseline is grouping off with arrival order. Reported: scoring calls
    per second (first to last scoring answer), the share of prompt tokens evaluated, the cost in
    calls and the winner's score on the test pool.
(sim) whole studies on the simulator with its prefix-cache model (`engine.serving.latency`):
    10 ms per call plus 1 ms per uncached prompt token, a cached token costing 0.1 of that, and a
    cache of 120 tokens (the last three or four prompts: a server under load from other users,
    where eviction makes the order matter); 8 calls in flight, no rate limit. Reported: study
    wall time, and the picks against the simulator's latent quality.

    nice -n 10 .venv/bin/python bench/prefix.py                  # every part, seeds 1 2
    .venv/bin/python bench/prefix.py --parts sim --seeds 1 2 3 4 5

Writes bench/results/prefix.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.app import StudyConfig, open_study, prepare
from engine.local import LocalSettings, serve_local
from engine.local.backend import Order
from engine.local.server import load_model
from engine.propose import Templates
from engine.sim import SimConfig, serve_sim
from engine.study.events import Event, PullDone
from engine.study.prompting import ScoringPrompt, pick_demos
from engine.study.result import StudyResult
from engine.task import load_task, split_task

RESULTS = Path(__file__).resolve().parent / "results"
TASK = "larger_number"
LOCAL_RUNS: tuple[tuple[bool, Order], ...] = (
    (False, "arrival"),  # the baseline
    (True, "arrival"),
    (False, "prefix"),
    (True, "prefix"),
)


class PullClock:
    """An observer: when each scoring answer came."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, PullDone):
            self.times.append(time.perf_counter())

    def rate(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


async def _quality(url: str, text: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/sim/quality", params={"instruction": text, "task": TASK}) as answer,
    ):
        answer.raise_for_status()
        body: dict[str, Any] = await answer.json()
        return float(body["quality"])


async def _run(config: StudyConfig) -> tuple[StudyResult, dict[str, Any]]:
    clock = PullClock()
    started = time.perf_counter()
    async with open_study(prepare(config), observers=[clock], say=lambda _: None) as study:
        result = await study.run()
    assert result.winner is not None
    return result, {
        "group_by_candidate": config.throughput.group_by_candidate,
        "seed": config.search.seed,
        "scoring_calls": result.spend.scoring_calls,
        "share": result.call_ratio,
        "calls_per_s": clock.rate(),
        "wall_s": time.perf_counter() - started,
        "winner": result.winner.instruction,
        "winner_test": result.winner.test_score,
    }


def _model_prompts(demos: int, examples: int, candidates: int) -> dict[tuple[int, int], str]:
    splits = split_task(load_task(TASK, seed=1), seed=1)
    asking = ScoringPrompt(Templates(), demos=pick_demos(splits.demo, demos, seed=1))
    return {
        (c, e): asking.completion(f"Candidate {c}: write the larger of the two numbers.", x.input)
        + " "
        + x.outputs[0]
        for c in range(candidates)
        for e, x in enumerate(splits.scoring[:examples])
    }


def model_order(all_demos: list[int], examples: int = 15, candidates: int = 8) -> dict[str, Any]:
    """The model alone: calls per second run candidate by candidate and interleaved."""
    model = load_model(LocalSettings(model="smollm2", threads=1))
    results: dict[str, Any] = {}
    print(f"\nmodel alone: SmolLM2, one thread, {candidates} candidates x {examples} examples")
    print("| scoring demos | order | calls/s (median of 3) | prompt tokens evaluated |")
    print("|---|---|---|---|")
    try:
        for demos in all_demos:
            prompts = _model_prompts(demos, examples, candidates)
            orders = {
                "grouped": [prompts[c, e] for c in range(candidates) for e in range(examples)],
                "interleaved": [prompts[c, e] for e in range(examples) for c in range(candidates)],
            }
            rates: dict[str, list[float]] = {name: [] for name in orders}
            evaluated: dict[str, float] = {}
            for _ in range(3):  # taking turns, so that a busy moment of the machine hits both
                for name, sequence in orders.items():
                    asked, done = model.tokens_asked, model.tokens_evaluated
                    started = time.perf_counter()
                    for prompt in sequence:
                        model.prompt_logprobs(prompt, 1)
                    rates[name].append(len(sequence) / (time.perf_counter() - started))
                    evaluated[name] = (model.tokens_evaluated - done) / (model.tokens_asked - asked)
            row = {name: statistics.median(values) for name, values in rates.items()}
            for name in orders:
                print(f"| {demos} | {name} | {row[name]:.2f} | {evaluated[name]:.0%} |")
            ratio = row["grouped"] / row["interleaved"]
            print(f"| {demos} | grouped / interleaved | {ratio:.2f}x | |")
            results[f"demos_{demos}"] = {"calls_per_s": row, "evaluated": evaluated, "ratio": ratio}
    finally:
        model.close()
    return results


async def local_study(
    seed: int, grouping: bool, order: Order, demos: int, folder: Path, budget: int
) -> dict[str, Any]:
    task = load_task(TASK, seed=seed)
    settings = LocalSettings(model="smollm2", threads=1, queue=256, order=order)
    async with (
        serve_sim(SimConfig(tasks=(task,), seed=seed)) as sim,
        serve_local(settings) as local,
    ):
        config = StudyConfig.of(
            task=TASK,
            seed=seed,
            base_url=local.base_url,
            model="smollm2",
            proposal_base_url=sim.base_url,
            proposal_model="sim-1",
            api="completions",
            scoring="logprob",
            scoring_demos=demos,
            concurrency=8,
            budget_scoring_calls=budget,
            variant_rounds=0,
            test_size=20,
            no_cache=True,
            group_by_candidate=grouping,
            journal=str(folder / f"local-{seed}-{grouping}-{order}-{demos}.jsonl"),
        )
        model = local.local.model
        asked, done = model.tokens_asked, model.tokens_evaluated
        _, run = await _run(config)
        evaluated = (model.tokens_evaluated - done) / max(1, model.tokens_asked - asked)
        return {**run, "order": order, "demos": demos, "evaluated": evaluated}


def summarize_local(runs: list[dict[str, Any]], demos: int) -> dict[str, Any]:
    """Each (grouping, order) against the baseline of the same seed: calls per second."""
    rows: dict[str, Any] = {}
    print(f"\nlocal, {demos} scoring demos: against grouping off + arrival order (same seeds)")
    print("| grouping | server order | calls/s | ratio (min) | tokens evaluated | calls | test |")
    print("|---|---|---|---|---|---|---|")
    mine = [r for r in runs if r["demos"] == demos]
    for grouping, order in LOCAL_RUNS:
        these = [r for r in mine if (r["group_by_candidate"], r["order"]) == (grouping, order)]
        bases = {
            r["seed"]: r for r in mine if (r["group_by_candidate"], r["order"]) == LOCAL_RUNS[0]
        }
        ratios = [r["calls_per_s"] / bases[r["seed"]]["calls_per_s"] for r in these]
        row = {
            "calls_per_s": statistics.median(r["calls_per_s"] for r in these),
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "evaluated": statistics.median(r["evaluated"] for r in these),
            "scoring_calls": statistics.median(r["scoring_calls"] for r in these),
            "winner_test": statistics.median(r["winner_test"] for r in these),
        }
        rows[f"{'on' if grouping else 'off'}/{order}"] = row
        print(
            f"| {'on' if grouping else 'off'} | {order} | {row['calls_per_s']:.2f} | "
            f"{row['ratio_median']:.2f}x ({row['ratio_min']:.2f}x) | {row['evaluated']:.0%} | "
            f"{row['scoring_calls']:.0f} | {row['winner_test']:.3f} |"
        )
    return rows


async def sim_study(seed: int, grouping: bool, folder: Path) -> dict[str, Any]:
    task = load_task(TASK, seed=seed)
    sim = SimConfig(
        tasks=(task,),
        seed=seed,
        debug_routes=True,
        latency_base_s=0.01,
        latency_per_prompt_token_s=0.001,
        prefix_cache_tokens=120,
        cached_token_cost=0.1,
    )
    async with serve_sim(sim) as server:
        config = StudyConfig.of(
            task=TASK,
            seed=seed,
            base_url=server.base_url,
            concurrency=8,
            test_size=20,
            no_cache=True,
            group_by_candidate=grouping,
            journal=str(folder / f"sim-{seed}-{grouping}.jsonl"),
        )
        result, run = await _run(config)
        best = max([await _quality(server.base_url, c.instruction) for c in result.candidates])
        assert result.winner is not None
        regret = best - await _quality(server.base_url, result.winner.instruction)
        cache = server.prefix_cache_stats()
        run["cached_prompt_share"] = cache["hits"] / max(1, cache["hits"] + cache["misses"])
        run["within_epsilon"] = regret <= 2 / result.n
        return run


def summarize_sim(runs: list[dict[str, Any]]) -> dict[str, Any]:
    on = [r for r in runs if r["group_by_candidate"]]
    off = {r["seed"]: r for r in runs if not r["group_by_candidate"]}
    ratios = [off[r["seed"]]["wall_s"] / r["wall_s"] for r in on]
    row = {
        "speedup_median": statistics.median(ratios),
        "speedup_min": min(ratios),
        "calls_on": statistics.median(r["scoring_calls"] for r in on),
        "calls_off": statistics.median(r["scoring_calls"] for r in off.values()),
        "picks_on": f"{sum(r['within_epsilon'] for r in on)}/{len(on)}",
        "picks_off": f"{sum(r['within_epsilon'] for r in off.values())}/{len(off)}",
    }
    print("\nsim: study wall time, grouping off / on (per seed)")
    for r in on:
        print(f"  seed {r['seed']}: {off[r['seed']]['wall_s']:.2f} s / {r['wall_s']:.2f} s")
    print(
        f"| sim | {row['speedup_median']:.2f}x (min {row['speedup_min']:.2f}x) | "
        f"{row['calls_on']:.0f} / {row['calls_off']:.0f} | {row['picks_on']} / "
        f"{row['picks_off']} |"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts", nargs="+", choices=("model", "local", "sim"), default=["model", "local", "sim"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--local-budget", type=int, default=400)
    parser.add_argument("--local-demos", type=int, nargs="+", default=[0, 3])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ape-prefix-"))
    results: dict[str, Any] = {"args": vars(args)}
    if "model" in args.parts:
        results["model"] = model_order(args.local_demos)
    if "local" in args.parts:
        runs = []
        for demos in args.local_demos:
            for seed in args.seeds:
                for grouping, order in LOCAL_RUNS:
                    budget = args.local_budget
                    run = anyio.run(local_study, seed, grouping, order, demos, folder, budget)
                    runs.append(run)
                    print(orjson.dumps(run).decode(), flush=True)
        summary = {f"demos_{d}": summarize_local(runs, d) for d in args.local_demos}
        results["local"] = {"runs": runs, "summary": summary}
    if "sim" in args.parts:
        runs = []
        for seed in args.seeds:
            for grouping in (True, False):
                runs.append(anyio.run(sim_study, seed, grouping, folder))
                print(orjson.dumps(runs[-1]).decode(), flush=True)
        results["sim"] = {"runs": runs, "summary": summarize_sim(runs)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prefix.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"written to {RESULTS / 'prefix.json'}")


if __name__ == "__main__":
    main()
