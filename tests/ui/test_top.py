"""`ape-engine top` against a stand-in of the service's API contract: the event stream parsed,
the study picked, keys sent as PATCH in order, polling when the stream is missing or breaks,
plain lines without a terminal, and the bearer token."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable

import anyio
import pytest
from rich.console import Console

from engine.errors import ConfigError
from engine.study.snapshot import StudySnapshot
from engine.ui.keys import apply_key
from engine.ui.remote import HttpControl, ServiceClient, ServiceError, normalise_url, sse_events
from engine.ui.state import UiState
from engine.ui.top import follow, pick_study, top
from tests.ui.fake_service import FakeService, serving
from tests.ui.test_live import ScriptedReader


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    with anyio.fail_after(timeout_s):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


async def chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.anyio
async def test_sse_frames_split_anywhere_comments_and_multiline_data() -> None:
    stream = b': ping\n\nevent: snapshot\ndata: {"a":\ndata: 1}\n\nevent: end\r\ndata: x\r\n\r\ndata: y\n\n'
    for size in (1, 2, 7, len(stream)):
        parts = [stream[i : i + size] for i in range(0, len(stream), size)]
        events = [event async for event in sse_events(chunks(parts))]
        assert events == [("snapshot", '{"a":\n1}'), ("end", "x"), ("message", "y")]


def test_normalise_url_and_pick_study() -> None:
    assert normalise_url("localhost:8750/") == "http://localhost:8750"
    assert normalise_url(" https://h/x/ ") == "https://h/x"
    studies = [
        {"id": "aaa111", "status": "finished"},
        {"id": "bbb222", "status": "running"},
        {"id": "bbb333", "status": "running"},
    ]
    assert pick_study(studies, None, "u") == "bbb222"  # the first running one
    assert pick_study(studies, "aaa", "u") == "aaa111"  # a unique prefix
    assert pick_study(studies[:1], None, "u") == "aaa111"  # nothing running: the first
    with pytest.raises(ConfigError, match="--study bbb: several studies match on u"):
        pick_study(studies, "bbb", "u")
    with pytest.raises(ConfigError, match="no such study on u; the studies are aaa111, bbb222"):
        pick_study(studies, "zzz", "u")
    with pytest.raises(ConfigError, match="no study on the service at u"):
        pick_study([], None, "u")


@pytest.mark.anyio
async def test_keys_become_patches_in_order_and_show_at_once() -> None:
    service = FakeService()
    study = service.add("s1")
    async with serving(service) as url, ServiceClient(url) as client:
        errors: list[str] = []
        control = HttpControl(client, "s1", await client.snapshot("s1"), on_error=errors.append)
        state = UiState()
        async with anyio.create_task_group() as group:
            group.start_soon(control.run)
            for key in ["C", "C", "b", "R", "N", "p", "j", "d"]:
                apply_key(key, control, state)
            # the second C stepped from the first one's value before any answer came back
            assert control.snapshot().throughput.concurrency == 25
            await eventually(lambda: len(service.patches) == 7 and not control.pending)
            apply_key("p", control, state)  # the service says paused now: p resumes
            await eventually(lambda: len(service.patches) == 8 and not control.pending)
            group.cancel_scope.cancel()
        assert service.patches == [
            {"concurrency": 20},
            {"concurrency": 25},
            {"budgets": {"scoring_calls": 1600}},
            {"rate_limits": {"requests_per_minute": 7500.0, "tokens_per_minute": 112500.0}},
            {"new_candidate_share": 0.3},
            {"paused": True},
            {"drop": [3]},
            {"paused": False},
        ]
        assert errors == []
        assert study.current.throughput.concurrency == 25
        assert [row.state for row in study.current.arms if row.arm == 3] == ["dropped"]
        assert study.current.status == "running"


@pytest.mark.anyio
async def test_a_refused_patch_is_reported_and_the_truth_fetched_again() -> None:
    service = FakeService()
    service.add("s1")
    async with serving(service) as url, ServiceClient(url) as client:
        errors: list[str] = []
        control = HttpControl(client, "s1", await client.snapshot("s1"), on_error=errors.append)
        async with anyio.create_task_group() as group:
            group.start_soon(control.run)
            control._queue({"concurrency": 0})  # what a buggy key would send
            await eventually(lambda: bool(errors))
            group.cancel_scope.cancel()
        assert errors == ["PATCH /v1/studies/s1: 400 concurrency: must be an integer >= 1"]
        assert control.snapshot().throughput.concurrency == 16
        with pytest.raises(ConfigError, match="concurrency: must be an integer >= 1"):
            control.set_concurrency(0)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["stream", "no-stream", "broken-stream"])
async def test_follow_until_done_by_stream_or_polling(mode: str) -> None:
    service = FakeService(events=mode != "no-stream")
    if mode == "broken-stream":
        service.break_stream_after = 2
    service.add("s1")
    seen: list[StudySnapshot] = []
    notices: list[str] = []

    async def finish_later() -> None:
        await anyio.sleep(0.4)
        service.finish("s1")

    async with (
        serving(service) as url,
        ServiceClient(url) as client,
        anyio.create_task_group() as group,
    ):
        group.start_soon(finish_later)
        with anyio.fail_after(10):
            last = await follow(client, "s1", seen.append, on_notice=notices.append)
    assert last is not None and last.done and last.status == "finished"
    assert seen[-1] == last and len(seen) >= 3
    gets = sum(1 for method, path, _ in service.log if (method, path) == ("GET", "/v1/studies/s1"))
    if mode == "stream":
        assert notices == [] and gets == 0  # everything came by the stream
    elif mode == "no-stream":
        assert notices and "no event stream" in notices[0] and "polling every 0.25 s" in notices[0]
        assert gets >= 2
    else:
        assert notices == ["the event stream ended early; polling every 0.25 s"] and gets >= 1


@pytest.mark.anyio
async def test_plain_lines_without_a_terminal_until_the_study_ends() -> None:
    service = FakeService()
    service.add("older", status="finished", done=True)
    service.add("s2")
    out = io.StringIO()
    console = Console(file=out, width=300)

    async def finish_later() -> None:
        await anyio.sleep(0.5)
        service.finish("s2")

    async with serving(service) as url, anyio.create_task_group() as group:
        group.start_soon(finish_later)
        with anyio.fail_after(10):
            code = await top(url, console=console, every_s=0.2, token_env=None)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("s2 ") for line in lines)  # the running study was picked
    assert lines[0].startswith("s2 running 1m15s | 1234/2000 scoring calls")
    assert lines[-1].startswith("s2 finished ")


@pytest.mark.anyio
async def test_the_bearer_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cret-token-0123456789"
    service = FakeService(token=secret)
    service.add("s1", status="finished", done=True)
    out = io.StringIO()
    async with serving(service) as url:
        monkeypatch.delenv("APE_TEST_TOKEN", raising=False)
        with pytest.raises(ServiceError, match="401 missing or wrong bearer token") as refused:
            await top(url, console=Console(file=out), token_env="APE_TEST_TOKEN")
        assert refused.value.status == 401
        monkeypatch.setenv("APE_TEST_TOKEN", secret)
        assert await top(url, console=Console(file=out), token_env="APE_TEST_TOKEN") == 0
    assert ("GET", "/v1/studies", f"Bearer {secret}") in service.log
    assert secret not in out.getvalue()


@pytest.mark.anyio
async def test_an_unreachable_service_is_a_clear_error() -> None:
    async with ServiceClient("127.0.0.1:9") as client:
        with pytest.raises(ServiceError, match=r"no service answers at http://127.0.0.1:9 ") as no:
            await client.studies()
    assert "start one with `ape-engine serve`" in str(no.value)  # what to do


@pytest.mark.anyio
async def test_live_top_keys_patch_the_service_and_quit_only_detaches() -> None:
    service = FakeService()
    study = service.add("s1")
    reader = ScriptedReader({3: ["C"], 5: ["p"], 7: ["k", "d"], 12: ["q"]})
    console = Console(record=True, width=120, height=40, file=io.StringIO(), force_terminal=True)
    async with serving(service) as url:
        with anyio.fail_after(10):
            code = await top(url, console=console, reader=reader, token_env=None)  # type: ignore[arg-type]
    assert code == 0 and reader.closed
    assert service.patches == [{"concurrency": 20}, {"paused": True}, {"drop": [1]}]
    assert not any(method == "DELETE" for method, _, _ in service.log)  # detached only
    assert study.current.status == "paused" and not study.current.done
    text = console.export_text()
    assert "★ leader" in text and f"@ {url.split('://')[1]}" in text


@pytest.mark.anyio
async def test_list_prints_the_studies_and_stops() -> None:
    service = FakeService()
    service.add("older", status="finished", done=True)
    service.add("s2")
    out = io.StringIO()
    async with serving(service) as url:
        code = await top(url, list_only=True, console=Console(file=out, width=200), token_env=None)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["id", "status", "task", "policy", "elapsed"]
    assert lines[1].split() == ["older", "finished", "larger_number", "lucb", "1m15s"]
    assert lines[2].split() == ["s2", "running", "larger_number", "lucb", "1m15s"]
    assert not any("/events" in path for _, path, _ in service.log)
