"""A key that is refused stops the study at once, and a call cannot hang for longer than its
endpoint's timeout allows. A 401 or 403 does not become a success on retry: the study stops at
the first one with the endpoint's own message, having paid for at most the calls that were in
flight. The request timeout is a setting (flag, TOML, the operator's endpoint) that reaches the
client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.app import StudyConfig, execute, prepare
from engine.app.execute import open_study
from engine.cli import build_parser
from engine.cli.run import config_from_args
from engine.errors import ConfigError, EndpointError
from engine.llm.protocol.classification import classify_response
from engine.sim import SimConfig, serve_sim
from engine.study.scoring import Score
from tests.service.helpers import running_service, simulator

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.mark.parametrize("stage", ["proposals", "scoring"])
async def test_a_refused_key_stops_the_study_before_its_first_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """The preflight asks each endpoint once: a refused key ends the study there, with the
    endpoint's own message and the variable the key came from, before any paid call."""
    monkeypatch.setenv("APE_WRONG_KEY", "not-the-key")
    config = SimConfig(tasks=("larger_number",), api_keys=("the-right-key",))
    async with serve_sim(config) as sim:
        settings: dict[str, object] = {
            "task": "larger_number",
            "base_url": sim.base_url,
            "api_key_env": "APE_WRONG_KEY",
            "no_cache": True,
            "concurrency": 8,
            "journal": str(tmp_path / "j.jsonl"),
        }
        if stage == "scoring":  # proposals on a key that works, scoring on one that does not
            monkeypatch.setenv("APE_RIGHT_KEY", "the-right-key")
            settings.update(proposal_api_key_env="APE_RIGHT_KEY")
        with pytest.raises(EndpointError, match=r"401.*Incorrect API key.*APE_WRONG_KEY"):
            await execute(prepare(StudyConfig.of(**settings)), say=lambda _: None)  # type: ignore[arg-type]
        stats = sim.stats()
    assert stats["by_status"].get("401", 0) == 1  # one question, no call paid
    assert stats["by_status"].get("200", 0) <= 2  # at most the other role's preflight


async def test_a_key_refused_in_the_middle_of_a_study_stops_it_at_the_first_401() -> None:
    """A key revoked while the study runs: the first 401 stops it, never the failure
    threshold."""
    from engine.llm.errors import AuthenticationError
    from tests.study.fakes import FakeScorer
    from tests.study.test_study import make_study

    class Revoked(FakeScorer):
        async def score(self, instruction: str, example: Any) -> Score:
            if self.calls >= 20:
                self.calls += 1
                raise AuthenticationError(
                    "endpoint 'target' answered HTTP 401: revoked", status=401
                )
            return await super().score(instruction, example)

    scorer = Revoked(delay_s=0.001)
    study, *_ = make_study(scorer=scorer, concurrency=4, max_failures=100)
    result = await study.run()
    assert result.status == "failed" and "401" in result.reason
    assert result.spend.failed_calls <= 4  # the calls in flight when the first came back


def test_401_and_403_are_final_and_stop_the_study() -> None:
    from engine.llm.errors import STOPS_STUDY, AuthenticationError

    for status, body in (
        (401, b'{"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}'),
        (403, b'{"error": {"message": "You may not use this model"}}'),
    ):
        error = classify_response(status, body, {}, endpoint="target")
        assert isinstance(error, AuthenticationError) and isinstance(error, STOPS_STUDY)
        assert not error.retryable


def test_the_timeout_is_a_flag_and_a_toml_setting(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["run", "--task", "sum", "--timeout", "7.5", "--proposal-timeout", "30"]
    )
    config = config_from_args(args)
    assert (config.target.timeout_s, config.proposal.timeout_s) == (7.5, 30.0)
    toml = tmp_path / "study.toml"
    toml.write_text('task = "sum"\ntimeout_s = 3\n')
    config = config_from_args(parser.parse_args(["run", "--config", str(toml)]))
    assert config.target.timeout_s == 3.0
    for bad in ("0", "-1", "1e9"):
        with pytest.raises(ConfigError, match="--timeout"):
            config_from_args(parser.parse_args(["run", "--task", "sum", "--timeout", bad]))


async def test_the_timeout_reaches_each_client(tmp_path: Path) -> None:
    async with simulator() as base_url:
        config = StudyConfig.of(
            task="larger_number",
            base_url=base_url,
            timeout_s=0.5,
            proposal_timeout_s=9.0,
            no_cache=True,
            journal=str(tmp_path / "j.jsonl"),
        )
        async with open_study(prepare(config), say=lambda _: None) as study:
            timeouts = {
                client.config.name: client.config.timeout_s for client in study.setup.clients
            }
    assert timeouts == {"target": 0.5, "proposal": 9.0}


async def test_the_operators_endpoint_sets_the_timeout_and_a_request_cannot(
    tmp_path: Path,
) -> None:
    async with simulator() as base_url:
        operator = {
            "endpoints": {"sim": {"base_url": base_url, "models": ["sim-1"], "timeout_s": 4.0}}
        }
        async with running_service(tmp_path, operator=operator) as service:
            study = {"task": "larger_number", "endpoint": "sim", "no_cache": True}
            status, answer = await service.call(
                "POST", "/v1/studies", {"config": {**study, "timeout_s": 600}}
            )
            assert status == 400 and answer["error"]["field"] == "config.timeout_s"
            status, created = await service.call(
                "POST", "/v1/studies", {"config": {**study, "budget_scoring_calls": 10}}
            )
            assert status == 201, created
            entry = service.manager.get(created["id"])
            assert entry.prepared is not None and entry.prepared.config.target.timeout_s == 4.0
            await service.wait_for(created["id"], lambda s: s["done"])
