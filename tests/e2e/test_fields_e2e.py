"""A task as a user brings it, end to end: support tickets with two input fields (a title and a
body) and a JSON answer with required keys, scored by checks declared in the settings file,
run from the command line on the simulator and on SmolLM2 (llama.cpp). What the models are
asked is recorded at the server: the fields are in the scoring prompts and the proposal
prompts, labelled, and in the report."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from engine.cli import main
from engine.serving import GenerationRequest
from engine.study.events import PullDone
from engine.study.journal import read_events
from tests.local.conftest import smollm2_path  # noqa: F401 -- the session fixture

pytestmark = pytest.mark.e2e

DEPARTMENTS = {
    "billing": ["I was charged twice for order {n}", "the invoice {n} is wrong", "refund {n}"],
    "shipping": ["parcel {n} never arrived", "order {n} came broken", "where is delivery {n}"],
    "account": ["I cannot log in since {n}", "reset my password ({n})", "close account {n}"],
}
STUDY_TOML = """\
task = "tickets.jsonl"

[[scoring.checks]]          # a JSON object with both keys, both as expected
kind = "json"
required = ["category", "urgency"]
compare = ["category", "urgency"]
"""
QUESTION = re.compile(r"(?:^|\n\n)Title: [^\n]+\nBody: [^\n]+\nOutput:$")


def write_task(folder: Path) -> None:
    """tickets.jsonl as a support team exports it, and the study's settings file."""
    rng = random.Random(7)
    lines = []
    for n in range(90):
        category = rng.choice(sorted(DEPARTMENTS))
        urgent = rng.random() < 0.4
        body = rng.choice(DEPARTMENTS[category]).format(n=n) + ("!! ASAP" if urgent else ".")
        record = {
            "input": {"title": f"ticket #{1000 + n}", "body": body},
            "output": {"category": category, "urgency": "high" if urgent else "low"},
        }
        lines.append(json.dumps(record))
    (folder / "tickets.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "study.toml").write_text(STUDY_TOML)


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[GenerationRequest]:
    """Every request the in-process server's backend is asked (simulator or local model)."""
    from engine.local.backend import LocalBackend
    from engine.sim.world import World

    seen: list[GenerationRequest] = []
    generate_now, generate = World.generate_now, LocalBackend.generate

    def recorded_now(self: World, request: GenerationRequest):  # type: ignore[no-untyped-def]
        seen.append(request)
        return generate_now(self, request)

    async def recorded(self: LocalBackend, request: GenerationRequest):  # type: ignore[no-untyped-def]
        seen.append(request)
        return await generate(self, request)

    monkeypatch.setattr(World, "generate_now", recorded_now)
    monkeypatch.setattr(LocalBackend, "generate", recorded)
    return seen


def scoring_questions(asked: list[GenerationRequest]) -> list[str]:
    return [r.prompt for r in asked if r.temperature == 0 and QUESTION.search(r.prompt)]


def proposal_prompts(asked: list[GenerationRequest]) -> list[str]:
    return [r.prompt for r in asked if "input-output pairs" in r.prompt]


def check_fields_everywhere(folder: Path, asked: list[GenerationRequest], out: str) -> None:
    every = [r.prompt for r in asked] + [c for r in asked for _, c in r.messages]
    assert not any("Input: Title" in text or "{'title'" in text for text in every)
    assert scoring_questions(asked), "no scoring prompt showed the fields labelled"
    proposals = proposal_prompts(asked)
    assert proposals and all(
        re.search(r'Title: ticket #\d+\nBody: [^\n]+\nOutput: \{"category": ', p) for p in proposals
    )
    assert "input fields title, body, checks json" in out
    page = (folder / "report.html").read_text()
    assert "Title: ticket #" in page and "Body: " in page  # inputs in the answers table
    result = json.loads((folder / "result.json").read_text())
    assert result["scoring"]["checks"][0]["required"] == ["category", "urgency"]
    assert all(demo["input"].startswith("Title: ticket #") for demo in result["scoring"]["demos"])


def test_a_ticket_task_with_fields_and_a_json_answer_runs_on_the_simulator(
    tmp_path: Path,
    asked: list[GenerationRequest],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "300")  # one line per line said
    write_task(tmp_path)
    assert main(["tasks", "tickets.jsonl", "--examples", "1"]) == 0
    assert "input fields: title, body" in capsys.readouterr().out
    code = main(
        ["run", "--config", "study.toml", "--backend", "sim", "--budget-scoring-calls", "300",
         "--no-cache", "--journal", "study.jsonl", "--json", "result.json",
         "--html", "report.html"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    check_fields_everywhere(tmp_path, asked, out)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["winner"]["test_score"] > 0.5  # the simulator answers the expected JSON
    rewards = {e.reward for e in read_events(tmp_path / "study.jsonl") if isinstance(e, PullDone)}
    assert 0.5 in rewards  # a wrong ticket of the same urgency: one key of two
    assert main(["show", "study.jsonl", "--top", "10", "--wrong", "2"]) == 0
    assert "Title: ticket #" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.slow
def test_the_same_task_runs_on_smollm2(
    smollm2_path: Path,  # noqa: F811
    tmp_path: Path,
    asked: list[GenerationRequest],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "300")  # one line per line said
    write_task(tmp_path)
    code = main(
        ["run", "--config", "study.toml", "--backend", "local", "--local-model",
         str(smollm2_path), "--local-threads", "2", "--model", "smollm2",
         "--initial-candidates", "2", "--candidates-per-call", "2", "--variant-rounds", "0",
         "--scoring-size", "4", "--test-size", "2", "--budget-scoring-calls", "8",
         "--answer-tokens", "24", "--concurrency", "2", "--no-cache", "--journal",
         "study.jsonl", "--json", "result.json", "--html", "report.html"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    check_fields_everywhere(tmp_path, asked, out)
    scored = [e for e in read_events(tmp_path / "study.jsonl") if isinstance(e, PullDone)]
    assert scored and all(0.0 <= e.reward <= 1.0 for e in scored)
    # a small model's answer that is not a JSON object with both keys is a 0 that says why
    for event in scored:
        if event.reward == 0.0 and not event.answer.lstrip().startswith("{"):
            assert event.note.startswith("json: "), event
