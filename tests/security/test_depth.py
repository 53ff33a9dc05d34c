"""Deep nesting never reaches a decoder: a request body, a task file, a settings file, a journal
record or an endpoint's answer nested past `MAX_DEPTH` is refused with a message that names the
depth and where it was passed, never a `RecursionError` or a traceback. Texts nested exactly to
the limit still decode."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from engine.app import StudyConfig, prepare
from engine.app.execute import _started  # the journal's first record
from engine.app.prepare import prepare_resume
from engine.cli import main as cli_main
from engine.errors import EngineError
from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.llm.errors import MalformedResponseError
from engine.llm.retry import RetryPolicy
from engine.nesting import MAX_DEPTH, json_depth_problem, toml_depth_problem
from engine.study.journal import read_records, replay_journal
from engine.task import load_task
from tests.service.helpers import running_service

pytestmark = pytest.mark.integration

BOMB = 100_000  # what the issue sent: 100,000 levels


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def test_the_limit_is_exact_and_strings_do_not_count() -> None:
    assert json_depth_problem(nested(MAX_DEPTH)) is None
    assert json_depth_problem(nested(MAX_DEPTH + 1)) == (
        f"nested deeper than {MAX_DEPTH} levels (column {MAX_DEPTH + 1})"
    )
    assert json_depth_problem('["' + "[" * BOMB + '", "\\"[[["]') is None  # inside strings
    assert json_depth_problem('{"a":\n [' + nested(BOMB) + "]}") == (
        f"nested deeper than {MAX_DEPTH} levels (line 2, column {MAX_DEPTH + 1})"
    )
    assert toml_depth_problem("a = " + nested(MAX_DEPTH - 1)) is None
    assert toml_depth_problem("a = 1.5\nb = [" + "1.5, " * 5000 + "]") is None  # dots of floats
    assert "line 2" in str(toml_depth_problem('x = "[[["\n' + "a" + ".b" * 80 + " = 1"))


@pytest.mark.anyio
async def test_a_request_body_nested_deep_is_refused_naming_the_depth(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies = [
        nested(BOMB).encode(),
        b'{"config": {"task": "larger_number", "prices": ' + nested(BOMB).encode() + b"}}",
        b'{"task": {"name": "t", "examples": [{"input": ' + nested(5000).encode() + b"}]}}",
    ]
    async with running_service(tmp_path) as service:
        for body in bodies:
            status, answer = await service.call("POST", "/v1/studies", raw=body)
            assert status == 400, answer
            assert answer["error"]["field"] == "body"
            assert f"nested deeper than {MAX_DEPTH} levels (column " in answer["error"]["message"]
        status, _ = await service.call("GET", "/health")
        assert status == 200
        assert not service.manager.entries  # nothing was created
    assert "RecursionError" not in caplog.text and "Traceback" not in caplog.text


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        (
            "deep.jsonl",
            '{"input": "a", "output": "b"}\n{"input": ' + nested(BOMB) + "}\n",
            "line 2",
        ),
        ("deep.json", '[{"input": "a",\n "output": ' + nested(BOMB) + "}]", "line 2, column"),
        ("task.json", '{"examples": [' + nested(BOMB) + "]}", "(column 77)"),
    ],
)
def test_a_task_file_nested_deep_is_refused_with_its_line(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(EngineError, match=f"nested deeper than {MAX_DEPTH} levels") as caught:
        load_task(str(path))
    assert str(path) in str(caught.value) and where in str(caught.value)


@pytest.mark.parametrize(
    "toml",
    [
        "task = 'sum'\nseed = " + nested(5000),  # what the issue sent: arrays 5,000 deep
        "task = 'sum'\n[prices]\nm = " + "{a = " * 3000 + "1" + "}" * 3000,
        "task = 'sum'\n" + "x" + ".a" * 20_000 + " = 1",  # dotted keys nest too
        "task = 'sum'\n[" + ".".join(["t"] * 20_000) + "]\n",
    ],
)
def test_a_settings_file_nested_deep_is_refused_by_run_and_serve(
    tmp_path: Path, toml: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "study.toml"
    path.write_text(toml)
    for command in (["run", "--config", str(path), "--dry-run"], ["serve", "--config", str(path)]):
        assert cli_main(command) != 0
        err = capsys.readouterr().err
        assert f"config file {str(path)!r}: nested deeper than {MAX_DEPTH} levels (line " in err
        assert "Traceback" not in err and "RecursionError" not in err


def test_a_journal_record_nested_deep_is_refused_with_its_line(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    config = StudyConfig.of(task="larger_number", journal=str(journal), no_cache=True)
    header = msgspec.json.encode(_started(prepare(config)))
    journal.write_bytes(
        header + b'\n{"kind": "warning", "code": "x", "message": ' + nested(BOMB).encode() + b"}\n"
    )
    for read in (replay_journal, read_records, prepare_resume):
        with pytest.raises(EngineError, match=r"line 2: nested deeper than 64 levels"):
            read(journal)


@pytest.mark.anyio
async def test_an_endpoint_answer_nested_deep_is_a_malformed_answer() -> None:
    """An endpoint that answers with a bomb: a malformed answer naming the depth, retried as
    such, never a RecursionError inside the client."""

    async def bomb(request: web.Request) -> web.Response:
        body = '{"choices": [{"message": {"content": ' + nested(BOMB) + "}}]}"
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", bomb)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    endpoint = EndpointConfig(
        name="deep", base_url=url, model="m", retry=RetryPolicy(max_attempts=2, base_delay_s=0)
    )
    try:
        async with LLMClient(endpoint) as client:
            with pytest.raises(MalformedResponseError, match="nested deeper than 64 levels"):
                await client.chat([{"role": "user", "content": "hi"}])
    finally:
        await runner.cleanup()
