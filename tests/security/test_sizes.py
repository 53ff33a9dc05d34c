"""One number cannot take a machine down. Every setting that sizes work or memory has a
realistic range, declared on its field and the same for flags, TOML, the service and Python:
the largest value the decoder takes runs a study on the simulator in a bounded process, and a
value just outside is refused with the field's name and its range. Where settings multiply,
the study's worst case (memory, calls) is estimated before it starts, and `serve` refuses a
study over its operator's limits, or past the studies it runs at once."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine.cli.flags import FLAGGED, flag_of
from engine.decoding import constraints
from engine.errors import ConfigError
from engine.settings import SETTINGS, StudyConfig
from tests.security.test_limits import SMALL
from tests.service.helpers import running_service

ENGINE = Path(sys.executable).parent / "ape-engine"
LIMIT_MB = 1024  # a study's process in its first seconds, whatever one number says
WATCH_S = 5.0
AT_ONCE = 6  # children watched together, so the suite stays short


def _numeric() -> list[tuple[str, Any, Any]]:
    """(flat name, largest accepted, smallest refused above) of each numeric setting that a
    flag gives."""
    found = []
    for one in SETTINGS:
        if one.kind not in (int, float) or one.flat not in FLAGGED:
            continue
        (meta,) = [m for m in constraints(one.type) if m.le is not None or m.lt is not None]
        if meta.le is not None:
            top = int(meta.le) if one.kind is int else float(meta.le)
            above = top + 1 if one.kind is int else float(meta.le) * 1.5 + 1
        else:
            assert meta.lt is not None
            top, above = float(meta.lt) - 1e-9, float(meta.lt)
        found.append((one.flat, top, above))
    return found


NUMERIC = _numeric()


def test_every_numeric_setting_has_a_range_and_help() -> None:
    assert len(NUMERIC) >= 30
    for name, top, _ in NUMERIC:
        assert FLAGGED[name].help, name
        assert top < 2**63, name


@pytest.mark.parametrize(("name", "top", "above"), NUMERIC, ids=[n for n, _, _ in NUMERIC])
def test_a_value_just_outside_the_range_is_refused_with_the_field_and_range(
    name: str, top: Any, above: Any
) -> None:
    StudyConfig.decode({name: top})  # the largest is taken
    with pytest.raises(Exception) as refused:
        StudyConfig.decode({name: above})
    message = str(refused.value)
    assert message.startswith(f"{name}: ") and "its range: " in message, message


def _limit_memory() -> None:
    cap = 3 * 1024**3  # address space: a runaway child fails instead of taking the machine
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.integration
def test_the_largest_value_of_each_setting_runs_a_study_in_bounded_memory(
    tmp_path: Path,
) -> None:
    """Each numeric setting at the largest value its range takes, the others at their
    defaults, runs a study on the simulator: the process stays under 1 GB for its first 5 s
    (children watched a few at a time, each under an address-space cap)."""
    results: dict[str, tuple[float, str]] = {}
    todo = list(NUMERIC)
    while todo:
        batch, todo = todo[:AT_ONCE], todo[AT_ONCE:]
        children = {}
        for name, top, _ in batch:
            folder = tmp_path / name
            folder.mkdir()
            command = [str(ENGINE), "run", "--backend", "sim", "--task", "first_letter",
                       "--no-cache", "--journal", str(folder / "j.jsonl"),
                       flag_of(name), str(top)]  # fmt: skip
            children[name] = subprocess.Popen(
                command,
                cwd=folder,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_limit_memory,
                env={**os.environ, "COLUMNS": "200"},
            )
        peaks = dict.fromkeys(children, 0.0)
        start = time.monotonic()
        while time.monotonic() - start < WATCH_S:
            for name, child in children.items():
                peaks[name] = max(peaks[name], _rss_mb(child.pid))
            time.sleep(0.05)
        for name, child in children.items():
            ended = child.poll()
            child.kill()
            _, err = child.communicate()
            problem = "" if ended in (None, 0) else err.decode(errors="replace")[-300:]
            results[name] = (peaks[name], problem)
    over = {name: peak for name, (peak, _) in results.items() if peak >= LIMIT_MB}
    failed = {name: problem for name, (_, problem) in results.items() if problem}
    assert not over, over
    assert not failed, failed
    assert all(peak > 0 for peak, _ in results.values())


def test_the_dry_run_says_the_worst_case_memory(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            str(ENGINE),
            "run",
            "--backend",
            "sim",
            "--task",
            "first_letter",
            "--no-cache",
            "--journal",
            str(tmp_path / "j.jsonl"),
            "--max-candidates",
            "2000",
            "--initial-candidates",
            "2000",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    )
    assert "memory: at most ~" in out.stdout
    assert "2000 candidates x 200 scoring examples" in out.stdout


def test_python_refuses_the_same_values() -> None:
    with pytest.raises(ConfigError, match=r"^candidates_per_call: .*its range: 1 to 50\)$"):
        StudyConfig.of(candidates_per_call=1_000_000)


@pytest.mark.anyio
@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("candidates_per_call", 1_000_000),
        ("candidates_per_call", 100_000),
        ("variants_per_leader", 2**53),
        ("variant_leaders", 2**53),
        ("demos_per_proposal", 2**53),
        ("scoring_demos", 2**53),
        ("max_instruction_chars", 2**53),
    ],
)
async def test_the_requests_that_took_the_service_down_are_refused(
    tmp_path: Path, name: str, value: int
) -> None:
    async with running_service(tmp_path) as service:
        body = {"config": {"task": "first_letter", name: value}}
        status, answer = await service.call("POST", "/v1/studies", body)
        assert status == 400, answer
        assert answer["error"]["field"] == f"config.{name}"
        assert "its range: " in answer["error"]["message"]
        assert service.manager.entries == {}
        status, _ = await service.call("GET", "/health")
        assert status == 200


@pytest.mark.anyio
@pytest.mark.integration
async def test_serve_refuses_a_study_whose_worst_case_is_over_the_operators_limit(
    tmp_path: Path,
) -> None:
    async with running_service(tmp_path, operator={"max_study_mb": 100}) as service:
        big = {**SMALL, "initial_candidates": 2000, "max_candidates": 2000, "concurrency": 1000}
        status, answer = await service.call("POST", "/v1/studies", {"config": big})
        assert status == 400, answer
        message = answer["error"]["message"]
        assert "--max-study-mb" in message and "2000 candidates x 40 scoring examples" in message
        assert service.manager.entries == {}
        assert not any(service.state.tasks.iterdir()) if service.state.tasks.exists() else True
        status, answer = await service.call("POST", "/v1/studies", {"config": SMALL})
        assert status == 201, answer


@pytest.mark.anyio
@pytest.mark.integration
async def test_serve_runs_at_most_its_operators_number_of_studies_at_once(
    tmp_path: Path,
) -> None:
    async with running_service(tmp_path, operator={"max_active_studies": 1}) as service:
        slow = {**SMALL, "budget_scoring_calls": 100_000, "sim_latency_s": 0.05}
        status, first = await service.call("POST", "/v1/studies", {"config": slow})
        assert status == 201, first
        status, answer = await service.call("POST", "/v1/studies", {"config": SMALL})
        assert status == 429, answer
        assert "--max-active-studies" in answer["error"]["message"]
        await service.call("DELETE", f"/v1/studies/{first['id']}")
