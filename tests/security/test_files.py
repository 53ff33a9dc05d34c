"""No request reaches outside the service's folders. A request cannot read a file by path (its
content never shows in an answer, and an answer never tells whether a path exists), write one
(the cache), import one (a scorer), and a path built from data -- a task's name -- stays in its
folder, in `run` as in `serve`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from engine.app import StudyConfig, execute, prepare
from tests.service.helpers import running_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

HASH = "$6$rounds=5000$SECRETSALT$SECRETHASHSECRETHASH"


@pytest.fixture
def shadow(tmp_path: Path) -> Path:
    """A file the service can read and a request must not: /etc/shadow's shape."""
    path = tmp_path / "outside" / "shadow"
    path.parent.mkdir()
    path.write_text(f"root:{HASH}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    return path


def reading_fields(path: str) -> list[dict[str, Any]]:
    """Request settings that would make the service open `path`."""
    return [
        {"task": path, "task_format": "csv"},
        {"task": path, "task_format": "jsonl"},
        {"task": path},
        {"task": "larger_number", "templates": path},
        {"task": "larger_number", "backend": "local", "local_model": path},
    ]


def without(text: str, path: str) -> str:
    return text.replace(path, "<path>")


@pytest.mark.parametrize("case", range(5))
async def test_a_request_reads_no_file_and_learns_nothing_of_one(
    tmp_path: Path, shadow: Path, case: int
) -> None:
    missing = str(tmp_path / "outside" / "no-such-file")
    async with running_service(tmp_path / "state") as service:
        answers = []
        for path in (str(shadow), missing):
            body = {"config": {**reading_fields(path)[case], "no_cache": True}}
            status, answer = await service.call("POST", "/v1/studies", body)
            text = orjson.dumps(answer).decode()
            assert HASH not in text and "SECRETSALT" not in text and "root:" not in text
            answers.append((status, without(text, path)))
        (status, text), (other_status, other_text) = answers
        assert status == other_status == 400, answers
        assert text == other_text  # the same answer whether the file is there or not
        assert service.manager.entries == {}


async def test_a_request_writes_no_file(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    body = {
        "config": {
            "task": "larger_number",
            "cache": str(outside / "made" / "by" / "a-request.sqlite3"),
            "budget_scoring_calls": 10,
        }
    }
    async with running_service(tmp_path / "state") as service:
        status, answer = await service.call("POST", "/v1/studies", body)
        await anyio.sleep(1.0)  # a study that started would have opened its cache by now
        assert not outside.exists()
        assert status == 400 and answer["error"]["field"] == "config.cache", answer
        status, answer = await service.call(
            "POST",
            "/v1/studies",
            {"config": {"task": "larger_number", "json_out": str(outside / "out.json")}},
        )
        assert status == 400 and not outside.exists()


async def test_a_request_imports_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    evil = tmp_path / "evil.py"
    evil.write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "async def score(instruction, example, client):\n    return 1.0\n"
    )
    async with running_service(tmp_path / "state") as service:
        for scorer in (f"{evil}:score", "evil:score"):
            body = {"config": {"task": "larger_number", "scorer": scorer, "no_cache": True}}
            status, answer = await service.call("POST", "/v1/studies", body)
            await anyio.sleep(0.5)
            assert not marker.exists(), scorer
            assert status == 400 and answer["error"]["field"] == "config.scorer", answer


def is_inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def journals_outside(root: Path, folder: Path) -> list[Path]:
    """The journals under `root` that are not in `folder`."""
    return [path for path in root.rglob("*.jsonl") if not is_inside(path, folder)]


def bigbench_escaping(folder: Path) -> Path:
    """A BIG-Bench task whose name climbs out of any folder it is used in."""
    examples = [{"input": f"{a} and {a + 3}", "target": str(a + 3)} for a in range(40)]
    path = folder / "escape" / "task.json"
    path.parent.mkdir(parents=True)
    document = {"name": "../../../../escaped", "metrics": ["exact_str_match"]}
    path.write_text(json.dumps({**document, "examples": examples}))
    return path


async def test_a_task_name_keeps_the_journal_in_its_folder_in_run(tmp_path: Path) -> None:
    task = bigbench_escaping(tmp_path / "tasks")
    journals = tmp_path / "deep" / "state" / "journals"
    config = StudyConfig.of(
        task=str(task),
        backend="sim",
        no_cache=True,
        budget_scoring_calls=20,
        variant_rounds=0,
        test_size=5,
    )
    prepared = prepare(config, journals=journals)
    assert prepared.task.name == "../../../../escaped"  # shown as the file says
    assert prepared.journal_path.resolve().is_relative_to(journals.resolve())
    result = await execute(prepared, say=lambda _: None)
    assert result.status == "finished"
    assert journals_outside(tmp_path, journals) == []


async def test_a_task_name_keeps_the_journal_in_its_folder_in_serve(tmp_path: Path) -> None:
    task = bigbench_escaping(tmp_path / "tasks")
    state = tmp_path / "deep" / "state"
    async with running_service(state) as service:
        body = {"config": {"task": str(task), "no_cache": True, "budget_scoring_calls": 20}}
        status, answer = await service.call("POST", "/v1/studies", body)
        if status == 201:  # a service that takes the task must keep its journal home
            assert is_inside(Path(answer["journal"]), state / "journals")
        else:  # a path from a request is refused: tasks come by name from the task folder
            assert status == 400 and answer["error"]["field"] == "config.task"
        await anyio.sleep(0.5)
    assert journals_outside(tmp_path, state / "journals") == []


async def test_a_task_from_the_task_folder_stays_in_it(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    bigbench_escaping(tasks)
    (tmp_path / "secret.jsonl").write_text('{"input": "a", "output": "b"}\n' * 3)
    (tasks / "link.jsonl").symlink_to(tmp_path / "secret.jsonl")
    state = tmp_path / "state"
    async with running_service(state, operator={"task_dir": str(tasks)}) as service:
        for name in ("../secret.jsonl", "link.jsonl", "/etc/passwd", ".hidden", "escape/../.."):
            body = {"config": {"task": name, "no_cache": True}}
            status, answer = await service.call("POST", "/v1/studies", body)
            assert status == 400 and answer["error"]["field"] == "config.task", (name, answer)
        body = {
            "config": {
                "task": "escape",
                "backend": "sim",
                "no_cache": True,
                "budget_scoring_calls": 20,
            }
        }
        status, answer = await service.call("POST", "/v1/studies", body)
        assert status == 201, answer
        journal = Path(answer["journal"])
        assert is_inside(journal, state / "journals")
        assert "escaped" in journal.name and ".." not in journal.name
