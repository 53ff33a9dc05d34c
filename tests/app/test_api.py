"""The Python entry (`engine.app.optimize`): examples in memory, a metric or scorer as a
function, endpoints as values; and the README's Python example, run as written against a
simulator that knows its examples."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from engine.app import Endpoint, optimize, optimize_async
from engine.app.api import _task
from engine.errors import ConfigError
from engine.sim import SimConfig, serve_sim, start_sim_process
from engine.task import Example, load_task

README = Path(__file__).resolve().parents[2] / "README.md"
SMALL: dict[str, Any] = {
    "initial_candidates": 5,
    "variant_rounds": 0,
    "budget_scoring_calls": 150,
    "no_cache": True,
    "concurrency": 8,
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # journals go under ./.ape
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def readme_python() -> str:
    text = README.read_text()
    section = text[text.index("### Python") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    code = readme_python()
    assert len(code.strip().splitlines()) < 15
    setup, _, run = code.partition("result = optimize(")
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    exec(setup, namespace)  # the examples and the metric, as the README writes them
    task = _task(namespace["examples"], None)
    folder = Path.cwd()
    path = folder / "examples.jsonl"
    path.write_text(
        "".join(f'{{"input": "{e.input}", "output": "{e.outputs[0]}"}}\n' for e in task.examples)
    )
    # the endpoint the README names comes from the environment, as the official client's does
    with start_sim_process(SimConfig(tasks=(str(path),), model="gpt-4o-mini")) as url:
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-readme-test-key")
        exec("result = optimize(" + run, namespace)
    result = namespace["result"]
    assert result.status == "finished", result.reason
    assert result.winner is not None and 0 <= result.winner.test_score <= 1
    assert result.spend.usd > 0  # gpt-4o-mini is priced: the dollar budget counted


def test_dicts_example_values_and_a_callable_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    builtin = load_task("larger_number", seed=3)
    dicts = [{"input": e.input, "output": list(e.outputs)} for e in builtin.examples[:60]]
    values = list(builtin.examples[60:120])
    seen: list[Example] = []

    def lenient(answer: str, example: Example) -> float:
        seen.append(example)
        return float(answer.strip() in example.outputs)

    result = optimize(
        dicts + values, backend="sim", metric=lenient, human_instruction="Pick the larger.", **SMALL
    )
    assert result.status == "finished" and result.winner is not None
    assert result.human is not None and result.human.instruction == "Pick the larger."
    assert seen and all(isinstance(e, Example) for e in seen)
    assert result.winner.test_score > 0  # the simulator knew these inputs


@pytest.mark.anyio
async def test_the_async_entry_takes_a_scorer_and_an_endpoint_value() -> None:
    async def half_credit(instruction: str, example: Example, client: Any) -> float:
        answer = await client.chat([{"role": "user", "content": example.input}], max_tokens=4)
        return 0.5 if answer.text else 0.0

    async with serve_sim(SimConfig(tasks=("sum",))) as server:
        result = await optimize_async(
            "sum",
            target=Endpoint("sim-1", base_url=server.base_url),
            scorer=half_credit,
            **SMALL,
        )
    assert result.status == "finished"
    assert all(c.mean in (0.0, 0.5) for c in result.candidates if c.pulls)


def test_examples_without_an_endpoint_are_refused_with_how_to_give_one() -> None:
    """In Python, by the keywords `optimize` takes: never a command line's flags."""
    with pytest.raises(ConfigError, match='backend="sim"') as refused:
        optimize([{"input": "a", "output": "b"}] * 3)
    assert "base_url=URL, model=NAME" in str(refused.value) and "--" not in str(refused.value)


def test_a_bad_example_names_its_index() -> None:
    with pytest.raises(ConfigError, match=r"examples\[1\]"):
        optimize([{"input": "a", "output": "b"}, {"in": "x"}], backend="sim")


def test_optimize_says_where_it_writes_and_what_the_cache_answered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The Python entry writes `.ape/` into the working directory and answers from its cache:
    it says both, on standard error (`say=None`: nothing)."""
    settings = {**SMALL, "no_cache": False, "backend": "sim"}
    first = optimize("larger_number", **settings)
    said = capsys.readouterr().err.splitlines()
    assert any(line.startswith("journal: .ape/journals/larger_number-") for line in said)
    assert any(line.startswith("response cache: .ape/cache.sqlite3 (") for line in said)
    assert (Path.cwd() / ".ape" / "cache.sqlite3").is_file() and first.spend.cached_calls == 0
    again = optimize("larger_number", **settings)  # the same requests: the cache answers them
    said = capsys.readouterr().err.splitlines()
    assert again.spend.cached_calls > 0
    assert (
        f"{again.spend.cached_calls:,} answers came from the response cache .ape/cache.sqlite3 "
        "(asked before, not paid again); no_cache=True asks the model again"
    ) in said
    optimize("larger_number", say=None, **settings)
    assert capsys.readouterr().err == ""


def test_dict_inputs_are_named_fields_shown_labelled() -> None:
    examples = [
        {
            "input": {"title": f"order {i}", "body": f"{i} apples"},
            "output": "yes" if i % 2 else "no",
        }
        for i in range(60)
    ]
    task = _task(examples, "Say yes for odd orders.")
    assert task.fields == ("title", "body")
    assert task.examples[1].input == "Title: order 1\nBody: 1 apples"
    result = optimize(examples, backend="sim", human_instruction="Say yes for odd orders.", **SMALL)
    assert result.status == "finished" and result.winner is not None
    assert result.winner.test_score > 0  # the simulator read the fields it was shown
    with pytest.raises(ConfigError, match="the same way"):
        optimize([{"input": "a", "output": "b"}, {"input": {"x": "a"}, "output": "b"}])
