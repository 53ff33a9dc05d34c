"""The whole study (real proposer, scorer, client, policy, journal, cache) against the simulator
engine.sim: the pick is epsilon-good on the scoring pool (what lucb proves) and its TRUE quality
(the simulator's /v1/sim/quality) is near the best candidate seen, in a share of full evaluation; budgets stop it within the calls in
flight; a `kill -9` of `ape-engine run` then `resume` pays for no completed call twice (counted
by the simulator's /v1/sim/stats); a repeat is answered by the cache."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

from engine.app import StudyConfig, execute, prepare
from engine.propose.templates import Templates
from engine.serving.protocol import GenerationRequest
from engine.sim import SimConfig, SimServer, serve_sim, start_sim_process
from engine.study import StudyResult
from engine.task import load_task, score
from engine.task.types import Example

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


async def get_json(url: str, **params: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        response.raise_for_status()
        return await response.json()


async def true_quality(base_url: str, instruction: str, task: str) -> float:
    body = await get_json(f"{base_url}/sim/quality", instruction=instruction, task=task)
    return float(body["quality"])


def pool_score(server: SimServer, instruction: str, pool: list[Example], metric: str) -> float:
    """The candidate's exact score on the scoring pool: the simulator's (deterministic) answer to
    every example, asked of its world directly, so no request is counted."""
    assert server.world is not None
    right = 0.0
    scoring = Templates().scoring
    for example in pool:
        prompt = scoring.format(instruction=instruction, input=example.input)
        request = GenerationRequest(
            api="chat", model="sim-1", prompt=prompt, max_tokens=16, temperature=0.0, stop=("\n",)
        )
        right += score(metric, server.world.generate_now(request)[0].text, example)
    return right / len(pool)


def chat_requests(stats: dict[str, Any]) -> int:
    """The study's own chat calls: each preflight (GET /models, then one tiny call) aside."""
    routes = stats["by_route"]
    return int(routes.get("/v1/chat/completions", 0)) - int(routes.get("/v1/models", 0))


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    task = load_task("larger_number", seed=3)
    async with serve_sim(SimConfig(tasks=(task,), seed=3, debug_routes=True)) as server:
        yield server


def config(base_url: str, tmp_path: Path, **changes: object) -> StudyConfig:
    settings: dict[str, object] = {
        "task": "larger_number",
        "base_url": base_url,
        "journal": str(tmp_path / "journal.jsonl"),
        "cache": str(tmp_path / "cache.jsonl"),
        "scoring_size": 200,
        "test_size": 50,
        "concurrency": 16,
        "seed": 3,
    }
    settings.update(changes)
    return StudyConfig.of(**settings)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("policy", ["lucb", "paired"])
async def test_the_pick_is_truly_near_best_in_a_fraction_of_full_evaluation(
    tmp_path: Path, policy: str
) -> None:
    """Five seeds (1-5), default settings but the policy (epsilon = 2 / n, two variant rounds).

    Both prove an epsilon-good pick on the scoring pool's means: checked exactly for every seed.
    The simulator's latent quality is what a pool of 200 examples estimates, with a sampling
    error of about 0.03 at 0.75, so by latent quality a pick is within epsilon in most runs
    (bench/study_calls.py: 19 of 24) and within the pool's own error in all. Seed 3 shows the
    limit: both policies pick an arm of latent 0.849 that scores 0.910 on the pool, the pool's
    best; paired's study also wrote a variant of latent 0.906 that scores no more there.
    """
    shares = []
    latent_good = 0
    for seed in range(1, 6):
        task = load_task("larger_number", seed=seed)
        async with serve_sim(SimConfig(tasks=(task,), seed=seed, debug_routes=True)) as server:
            prepared = prepare(
                config(
                    server.base_url, tmp_path / str(seed), seed=seed, no_cache=True, policy=policy
                )
            )
            result = await execute(prepared, say=lambda _: None)
            assert result.status == "finished", result.reason
            assert result.winner is not None
            requests = chat_requests(server.stats())
            qualities = [
                await true_quality(server.base_url, c.instruction, task.name)
                for c in result.candidates
            ]
            picked = await true_quality(server.base_url, result.winner.instruction, task.name)
            pool = list(prepared.splits.scoring)
            scores = [
                pool_score(server, c.instruction, pool, task.metric) for c in result.candidates
            ]
            picked_score = pool_score(server, result.winner.instruction, pool, task.metric)
        epsilon = 2 / result.n
        assert picked_score >= max(scores) - epsilon, (seed, picked_score, max(scores))
        # by latent quality, the pick can be no nearer the best than the pool tells them apart:
        # each arm's pool score is off its latent quality by up to the pool's error
        error = max(abs(s - q) for s, q in zip(scores, qualities, strict=True))
        assert picked >= max(qualities) - epsilon - 2 * error, (seed, picked, error)
        latent_good += picked >= max(qualities) - epsilon
        paid = result.spend.scoring_calls + result.spend.proposal_calls
        assert requests == paid + result.spend.evaluation_calls
        shares.append(result.call_ratio)
        print(
            f"\nseed {seed}: {len(result.candidates)} candidates, {result.spend.scoring_calls} / "
            f"{result.full_evaluation_calls} calls = {result.call_ratio:.3f}; picked "
            f"q={picked:.3f} (pool {picked_score:.3f}), best q={max(qualities):.3f} "
            f"(best pool {max(scores):.3f})"
        )
    assert latent_good >= 4, latent_good
    # the goal: at most 35 % of full evaluation (docs/benchmarks.md has the measured shares)
    assert statistics.median(shares) <= 0.35, shares


def _paid_pulls(journal: Path) -> set[tuple[int, int]]:
    records = [orjson.loads(line) for line in journal.read_bytes().splitlines()]
    return {
        (r["arm"], r["example"]) for r in records if r["kind"] == "pull_done" and not r["cached"]
    }


@pytest.mark.anyio
async def test_a_repeated_study_is_answered_by_the_cache(sim: SimServer, tmp_path: Path) -> None:
    """The cache's promise: no request is paid for twice. With 16 calls in flight the two
    studies' policies see results in another order, so the repeat may choose a few pulls the
    first never made (measured: 0-7 of about 750 over seeds 1-7); those, and only those, are
    paid."""
    url = sim.base_url
    first = await execute(prepare(config(url, tmp_path, variant_rounds=0)), say=lambda _: None)
    paid = chat_requests(await get_json(f"{url}/sim/stats"))
    journal = tmp_path / "j2.jsonl"
    second = await execute(
        prepare(config(url, tmp_path, variant_rounds=0, journal=str(journal))),
        say=lambda _: None,
    )
    repaid = _paid_pulls(journal)
    assert not repaid & _paid_pulls(tmp_path / "journal.jsonl"), "a pull was paid twice"
    assert chat_requests(await get_json(f"{url}/sim/stats")) == paid + len(repaid)
    assert second.winner is not None and first.winner is not None
    assert second.winner.instruction == first.winner.instruction
    calls = second.spend.scoring_calls + second.spend.evaluation_calls
    assert second.spend.cached_calls >= 0.98 * calls
    assert second.spend.proposal_calls == second.spend.cached_calls - calls + len(repaid)


@pytest.mark.anyio
async def test_a_call_budget_stops_the_study_within_the_calls_in_flight(
    sim: SimServer, tmp_path: Path
) -> None:
    result = await execute(
        prepare(
            config(sim.base_url, tmp_path, budget_scoring_calls=150, concurrency=8, no_cache=True)
        ),
        say=lambda _: None,
    )
    assert "scoring_calls" in result.reason
    assert 150 <= result.spend.scoring_calls <= 150 + 8
    assert result.winner is not None
    stats = await get_json(f"{sim.base_url}/sim/stats")
    paid = result.spend.scoring_calls + result.spend.proposal_calls + result.spend.evaluation_calls
    assert chat_requests(stats) <= paid + 8  # at most the cancelled calls in flight on top


@pytest.mark.anyio
async def test_a_token_budget_stops_the_study_within_the_calls_in_flight(
    sim: SimServer, tmp_path: Path
) -> None:
    result: StudyResult = await execute(
        prepare(config(sim.base_url, tmp_path, budget_tokens=30_000, no_cache=True)),
        say=lambda _: None,
    )
    assert "tokens" in result.reason
    spent = largest = 0  # tokens of the search, before the final evaluation
    for line in (tmp_path / "journal.jsonl").read_bytes().splitlines():
        record = orjson.loads(line)
        if record["kind"] == "pull_done":
            tokens = record["prompt_tokens"] + record["completion_tokens"]
            spent, largest = spent + tokens, max(largest, tokens)
        elif record["kind"] == "proposals_done":
            spent += record["prompt_tokens"] + record["completion_tokens"]
    assert 30_000 <= spent <= 30_000 + 16 * largest


def _journal_counts(path: Path) -> tuple[int, int]:
    observations = proposals = 0
    for line in path.read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the torn last line of a killed writer
        if record.get("kind") == "pull_done":
            observations += 1
        elif record.get("kind") == "proposals_done":
            proposals += int(record["calls"]) - int(record["cached_calls"])
    return observations, proposals


@pytest.mark.slow
def test_resume_after_kill_9_pays_for_no_completed_call_twice(tmp_path: Path) -> None:
    import anyio

    sim_config = SimConfig(tasks=("larger_number",), seed=5, latency_base_s=0.02, debug_routes=True)
    concurrency = 8
    with start_sim_process(sim_config) as url:

        def sim_requests() -> int:
            return chat_requests(anyio.run(get_json, f"{url}/sim/stats"))

        journal = tmp_path / "journal.jsonl"
        args = [
            "--task", "larger_number", "--base-url", url, "--journal", str(journal),
            "--no-cache", "--scoring-size", "100", "--test-size", "30",
            "--concurrency", str(concurrency), "--seed", "5",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        study = subprocess.Popen(
            [sys.executable, "-m", "engine", "run", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and study.poll() is None:
            if journal.exists() and _journal_counts(journal)[0] >= 200:
                break
            time.sleep(0.05)
        assert study.poll() is None, "the study ended before it could be killed"
        os.kill(study.pid, signal.SIGKILL)
        study.wait()
        time.sleep(0.1)  # let the simulator answer the calls that were in flight
        paid_before = sim_requests()
        observed, proposed = _journal_counts(journal)
        assert observed >= 200
        lost = paid_before - observed - proposed
        assert 0 <= lost <= concurrency + 2, lost  # only calls in flight at the kill are lost
        resumed = subprocess.run(
            [sys.executable, "-m", "engine", "resume", str(journal), "--json", "out.json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout
        paid_after = sim_requests()
    result = orjson.loads((tmp_path / "out.json").read_bytes())
    assert result["status"] == "finished"
    observed_total, proposed_total = _journal_counts(journal)
    spend = result["spend"]
    # the resumed process paid exactly for what it recorded, and the final evaluation
    new_work = (observed_total - observed) + (proposed_total - proposed)
    assert paid_after - paid_before == new_work + spend["evaluation_calls"]
    assert spend["scoring_calls"] == observed_total
    records = [orjson.loads(x) for x in journal.read_bytes().splitlines() if x.strip()]
    scoring = [(r["arm"], r["example"]) for r in records if r["kind"] == "pull_done"]
    assert len(set(scoring)) == len(scoring), "an (arm, example) was scored twice"


@pytest.mark.anyio
async def test_a_custom_scorer_from_the_config_drives_the_study(
    sim: SimServer, tmp_path: Path
) -> None:
    scorers = tmp_path / "scorers.py"
    scorers.write_text(
        "async def short_answers(instruction, example, client):\n"
        "    answer = await client.chat([{'role': 'user', 'content': instruction + '\\n\\nInput: '"
        " + example.input + '\\nOutput:'}], max_tokens=8, stop=['\\n'])\n"
        "    return 1.0 if answer.text.strip() in example.outputs else 0.0\n"
    )
    result = await execute(
        prepare(
            config(
                sim.base_url,
                tmp_path,
                scorer=f"{scorers}:short_answers",
                budget_scoring_calls=300,
                variant_rounds=0,
                no_cache=True,
            )
        ),
        say=lambda _: None,
    )
    assert result.status == "finished" and result.winner is not None
    assert 300 <= result.spend.scoring_calls <= 316
    assert result.spend.tokens > 0  # the scorer's calls are counted through its client
    assert 0 <= result.winner.test_score <= 1


@pytest.mark.anyio
async def test_pause_holds_back_the_calls_queued_at_the_limiter(tmp_path: Path) -> None:
    """At 600 requests a minute with 16 workers, most calls of a running study wait at the
    limiter; a pause must hold those back too, not only stop handing out new pulls."""
    task = load_task("larger_number", seed=3)
    sim = SimConfig(tasks=(task,), seed=3, latency_base_s=0.1)
    async with serve_sim(sim) as server:
        prepared = prepare(config(server.base_url, tmp_path, rpm=600, no_cache=True))
        study_box: list[Any] = []

        async def hold(study: Any) -> None:
            study_box.append(study)

        async with anyio.create_task_group() as group:
            group.start_soon(lambda: execute(prepared, watch=hold, say=lambda _: None))
            for _ in range(600):  # up to 30 s for the study to get going
                if chat_requests(server.stats()) >= 40:
                    break
                await anyio.sleep(0.05)
            study = study_box[0]
            study.pause()
            at_pause = chat_requests(server.stats())
            await anyio.sleep(2.0)  # 20 calls' worth of the rate limit
            held = chat_requests(server.stats()) - at_pause
            assert study.snapshot().status == "paused"
            study.resume()
            await anyio.sleep(1.0)
            assert chat_requests(server.stats()) - at_pause - held >= 5  # going again
            study.cancel()
    # only the calls already sent when the pause came (about 1 at 10/s and 0.1 s) may land
    assert held <= 3, held
