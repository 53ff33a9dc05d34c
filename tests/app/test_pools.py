"""A study on several endpoints per role: from repeated --base-url, [[endpoints]] tables and a
list of `Endpoint` values; the calls spread over the servers within each one's limit; a role
whose endpoints differ in where log-probabilities come from is refused by name; and a server
killed in the middle of a study loses no call (the study finishes, every pull once)."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.app import Endpoint, StudyConfig, optimize_async, prepare
from engine.app.endpoints import role_endpoints
from engine.app.execute import endpoints_json, open_study
from engine.cli.flags import add_setting_flags, checked_config, given_settings
from engine.errors import ConfigError, EndpointError
from engine.llm.pacing.limiter import RateLimiter
from engine.settings import load_config_file
from engine.sim import SimConfig, serve_sim
from engine.sim.server import sim_process
from engine.sim.world import World
from engine.study.dispatch import by_endpoint
from engine.study.events import PullDone
from engine.study.journal import replay_journal
from engine.task import load_task

pytestmark = pytest.mark.anyio
TASK = "first_letter"
SMALL: dict[str, Any] = {
    "initial_candidates": 5,
    "variant_rounds": 0,
    "no_cache": True,
    "test_size": 10,
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # journals go under ./.ape
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


# -- where the endpoints come from --------------------------------------------------------------


def parse(*argv: str) -> StudyConfig:
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    settings = given_settings(args)
    return checked_config(settings, flags=settings.keys())


def test_a_repeated_base_url_gives_the_role_its_endpoints() -> None:
    config = parse("--base-url", "http://a:1/v1", "--base-url", "http://b:2/v1", "--rpm", "600")
    assert config.target.base_url is None and [e.base_url for e in config.target.endpoints] == [
        "http://a:1/v1",
        "http://b:2/v1",
    ]
    targets = role_endpoints("target", config.target, config.target, "") or ()
    assert [(t.name, t.rpm, t.model) for t in targets] == [
        ("target-1", 600.0, "sim-1"),
        ("target-2", 600.0, "sim-1"),
    ]
    # the same clients
    assert role_endpoints("proposal", config.proposal, config.target, "") is None
    one = parse("--base-url", "http://a:1/v1")
    assert one.target.base_url == "http://a:1/v1" and one.target.endpoints == []
    with pytest.raises(ConfigError, match=r"^--base-url: Expected `str` matching"):
        parse("--base-url", "http://a:1/v1", "--base-url", "ftp://b")


def test_endpoint_tables_bring_their_own_and_take_the_rest_from_the_study(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(
        'task = "sum"\nmodel = "llama-8b"\napi_key_env = "VLLM_KEY"\nrpm = 600\n'
        "[[endpoints]]\n"
        'base_url = "http://gpu-a:8000/v1"\n'
        "[[endpoints]]\n"
        'base_url = "https://api.example.com/v1"\nname = "hosted"\nmodel = "llama-3-8b"\n'
        'api_key_file = "/run/key"\nrpm = 3000\ntpm = 400000\nweight = 2\n'
    )
    config = StudyConfig.of(**load_config_file(path))
    targets = role_endpoints("target", config.target, config.target, "") or ()
    first, hosted = targets
    assert (first.name, first.model, first.api_key_env, first.rpm) == (
        "target-1",
        "llama-8b",
        "VLLM_KEY",
        600.0,
    )
    assert (hosted.name, hosted.model, hosted.api_key_env, hosted.api_key_file) == (
        "hosted",
        "llama-3-8b",
        None,
        "/run/key",
    )
    assert (hosted.rpm, hosted.tpm, hosted.weight) == (3000.0, 400000.0, 2.0)
    # proposals with their own model go to the same servers, each with its own key
    with_model = config.replace(proposal_model="llama-70b")
    proposals = role_endpoints("proposal", with_model.proposal, config.target, "")
    assert proposals is not None
    assert [(p.name, p.model, p.api_key_file) for p in proposals] == [
        ("proposal-1", "llama-70b", None),
        ("proposal-2", "llama-70b", "/run/key"),
    ]
    config = config.replace(journal=str(tmp_path / "j.jsonl"))
    ends = endpoints_json(prepare(config))
    assert [e["name"] for e in ends["target"]["endpoints"]] == ["target-1", "hosted"]
    assert "key" not in str(ends).replace("api_key_env", "").replace("VLLM_KEY", "")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"base_url": "http://a:1/v1", "endpoints": [{"base_url": "http://b:1/v1"}]},
            "give base_url (one endpoint) or endpoints (several), not both",
        ),
        (
            {"endpoints": [{"base_url": "http://a:1/v1", "api_key_env": "sk-abc123def456ghi789"}]},
            "endpoints[0].api_key_env: takes the name of an environment variable",
        ),
        (
            {"endpoints": [{"base_url": "http://a:1/v1", "name": "x"}] * 2},
            "each endpoint needs a name of its own ('x' twice)",
        ),
        (
            {
                "endpoints": [
                    {"base_url": "http://a/v1", "headers": {"key": "abcdef0123456789abcd"}}
                ]
            },
            "endpoints[0].headers.key: the value looks like a key",
        ),
    ],
)
def test_bad_endpoint_lists_are_refused_by_field(changes: dict[str, Any], message: str) -> None:
    config = StudyConfig.of(task=TASK, **changes)
    with pytest.raises(ConfigError) as refused:
        prepare(config)
    assert message in str(refused.value)
    assert "sk-abc123" not in str(refused.value)


def test_permits_are_ordered_by_endpoint() -> None:
    a, b = RateLimiter(), RateLimiter()
    permits = [a.try_acquire(), b.try_acquire(), a.try_acquire(), b.try_acquire()]
    ordered = by_endpoint([p for p in permits if p is not None])
    assert [p.limiter for p in ordered] == [a, a, b, b]


# -- studies on several servers ----------------------------------------------------------------


async def test_a_study_spreads_its_calls_over_its_servers_within_each_limit() -> None:
    sims = SimConfig(tasks=(TASK,), latency_base_s=0.02, requests_per_minute=1200, seed=4)
    async with serve_sim(sims) as one, serve_sim(sims) as two, serve_sim(sims) as three:
        urls = [one.base_url, two.base_url, three.base_url]
        config = StudyConfig.of(
            task=TASK,
            endpoints=[{"base_url": url} for url in urls],  # type: ignore[misc]
            rpm=1200,
            budget_scoring_calls=300,
            concurrency=24,
            **SMALL,
        )
        prepared = prepare(config)
        async with open_study(prepared, say=lambda _: None) as study:
            result = await study.run()
            rows = study.snapshot().endpoints
        served = [server.stats()["requests"] for server in (one, two, three)]
        limited = sum(server.stats()["by_status"].get("429", 0) for server in (one, two, three))
    assert result.status == "finished" and not result.failures
    assert [row.endpoint for row in rows] == ["target-1", "target-2", "target-3"]
    assert all(row.role == "target" and row.state == "ok" for row in rows)
    assert sum(row.share for row in rows) == pytest.approx(1.0)
    assert min(served) > 0.2 * sum(served)  # every server did its part
    assert limited == 0  # each within its own limit


class _NoEcho(World):
    async def prompt_logprobs(self, prompt: str, top: int) -> Any:
        return ()


async def test_a_logprob_study_over_unlike_endpoints_is_refused_by_name() -> None:
    sims = SimConfig(tasks=(TASK,))
    world = _NoEcho([load_task(TASK, seed=0)], sims)
    async with serve_sim(sims) as vllm, serve_sim(sims, backend=world) as llamacpp:
        config = StudyConfig.of(
            task=TASK,
            endpoints=[
                {"base_url": vllm.base_url, "name": "vllm"},  # type: ignore[list-item]
                {"base_url": llamacpp.base_url, "name": "llamacpp"},  # type: ignore[list-item]
            ],
            scoring="logprob",
            api="completions",
            **SMALL,
        )
        with pytest.raises(EndpointError) as refused:
            async with open_study(prepare(config), say=lambda _: None):
                pass
    assert "'vllm' serves prompt logprobs, 'llamacpp' does not" in str(refused.value)


async def test_optimize_takes_a_list_of_endpoints() -> None:
    sims = SimConfig(tasks=(TASK,), seed=5)
    async with serve_sim(sims) as one, serve_sim(sims) as two:
        result = await optimize_async(
            TASK,
            target=[
                Endpoint("sim-1", one.base_url, rpm=6000, name="left"),
                Endpoint("sim-1", two.base_url, rpm=6000, weight=2, name="right"),
            ],
            budget_scoring_calls=100,
            **SMALL,
        )
        calls = [one.stats()["requests"], two.stats()["requests"]]
    assert result.status == "finished" and min(calls) > 10
    with pytest.raises(ConfigError, match=r"target\[1\].base_url: each endpoint of a list"):
        await optimize_async(TASK, target=[Endpoint("m", "http://a:1/v1"), Endpoint("m")])


async def test_a_judged_study_on_two_servers_has_one_judge_client() -> None:
    sims = SimConfig(tasks=("larger_number",), seed=7)
    async with serve_sim(sims) as one, serve_sim(sims) as two:
        config = StudyConfig.of(
            task="larger_number",
            endpoints=[{"base_url": one.base_url}, {"base_url": two.base_url}],  # type: ignore[list-item]
            scoring="judge",
            judge_rubric="matches_reference",
            budget_scoring_calls=40,
            **SMALL,
        )
        async with open_study(prepare(config), say=lambda _: None) as study:
            result = await study.run()
            rows = {row.endpoint: row for row in study.snapshot().endpoints}
        served = [one.stats()["requests"], two.stats()["requests"]]
    assert result.status == "finished" and not result.failures
    # the targets share the answers (and the proposals); the judge, on the first server by
    # default, grades each answer through a client of its own
    assert set(rows) == {"target-1", "target-2", "judge"} and rows["judge"].role == "judge"
    answers = rows["target-1"].calls + rows["target-2"].calls
    assert 40 <= rows["judge"].calls <= answers
    assert served[0] > rows["judge"].calls and served[1] > 0


async def test_a_server_killed_mid_study_loses_no_call() -> None:
    sims = SimConfig(tasks=(TASK,), latency_base_s=0.3, seed=6)
    with (
        sim_process(sims) as (first, _),
        sim_process(sims) as (second, doomed),
        sim_process(sims) as (third, _),
    ):
        config = StudyConfig.of(
            task=TASK,
            endpoints=[{"base_url": url} for url in (first, second, third)],  # type: ignore[misc]
            budget_scoring_calls=400,
            concurrency=30,
            **SMALL,
        )
        prepared = prepare(config)
        scored: list[PullDone] = []
        under_way = anyio.Event()

        def observe(event: Any) -> None:
            if isinstance(event, PullDone):
                scored.append(event)
                if len(scored) == 60:
                    under_way.set()

        async with open_study(prepared, observers=[observe], say=lambda _: None) as study:
            async with anyio.create_task_group() as group:
                outcome: dict[str, Any] = {}

                async def run() -> None:
                    outcome["result"] = await study.run()

                group.start_soon(run)
                await under_way.wait()
                # killed, and gone (its sockets closed), with no await between: no call of
                # the study starts or ends meanwhile
                os.kill(doomed.pid, signal.SIGKILL)
                doomed.wait()
                at_death = next(r for r in study.snapshot().endpoints if r.endpoint == "target-2")
            rows = {r.endpoint: r for r in study.snapshot().endpoints}
    result = outcome["result"]
    pulls = [
        (e.arm, e.example)
        for e in replay_journal(prepared.journal_path).events
        if isinstance(e, PullDone)
    ]
    assert result.status == "finished" and not result.failures
    assert len(pulls) == len(set(pulls)) == result.spend.scoring_calls
    dead = rows["target-2"]
    assert dead.state == "cooled" and dead.failed_over >= 1
    # a call sent again after its request had reached the server (it may have been served, and
    # so paid twice) was on the wire when the server died, or was sent after it had died (and
    # was served by no one): the first kind are at most the calls in flight at its death
    sent_after_death = dead.calls - at_death.calls
    assert 1 <= dead.resent <= at_death.in_flight + sent_after_death
    assert rows["target-1"].calls > dead.calls and rows["target-3"].calls > dead.calls
