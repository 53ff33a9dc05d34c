"""The user's own candidates given inline in POST /v1/studies, and the nothing-learned warning
in the service's snapshot, against the in-process simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.helpers import running_service, simulator

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

MINE = [
    {"instruction": "Write the larger of the two numbers.", "name": "larger"},
    {"instruction": "Write the smaller of the two numbers."},
]


def settings(**changes: object) -> dict[str, object]:
    return {
        "task": "larger_number",
        "endpoint": "sim",
        "api": "chat",
        "initial_candidates": 0,
        "variant_rounds": 0,
        "scoring_size": 30,
        "test_size": 10,
        "no_cache": True,
        **changes,
    }


async def test_inline_candidates_are_the_pool(tmp_path: Path) -> None:
    async with simulator(seed=3) as base_url, running_service(tmp_path, sim=base_url) as service:
        study = await service.create(settings(), candidates=MINE)
        done = await service.wait_for(study, lambda s: bool(s["done"]))
        assert [(a["origin"], a["instruction"]) for a in done["arms"]] == [
            ("user", c["instruction"]) for c in MINE
        ]
        assert done["extra"]["spend"]["proposal_calls"] == 0
        files = sorted(p.name for p in (service.state.root / "tasks").glob("candidates-*"))
        assert len(files) == 1  # kept as a file the journal names, as an inline task is


async def test_bad_inline_candidates_are_refused_naming_the_field(tmp_path: Path) -> None:
    async with simulator(seed=3) as base_url, running_service(tmp_path, sim=base_url) as service:
        for body, field in (
            ({"candidates": []}, "candidates"),
            ({"candidates": [{"instruction": " "}]}, "candidates[0].instruction"),
            ({"candidates": [{"text": "x"}]}, "candidates[0]"),
            ({"candidates": MINE, "config": settings(candidates="x.txt")}, "config.candidates"),
        ):
            body.setdefault("config", settings())
            status, answer = await service.call("POST", "/v1/studies", body)
            assert status == 400, answer
            assert answer["error"]["field"].startswith(field), answer
        duplicate = [MINE[0], {"instruction": MINE[0]["instruction"].upper()}]
        status, answer = await service.call(
            "POST", "/v1/studies", {"config": settings(), "candidates": duplicate}
        )
        assert status == 400 and "the same instruction as" in answer["error"]["message"]


async def test_the_snapshot_carries_the_nothing_learned_warning(tmp_path: Path) -> None:
    async with (
        simulator(seed=3, chatty=True) as base_url,
        running_service(tmp_path, sim=base_url) as service,
    ):
        config = settings(chat_format="plain", scoring_demos=0, initial_candidates=4)
        study = await service.create(config, candidates=MINE)
        done = await service.wait_for(study, lambda s: bool(s["done"]))
        assert len(done["warnings"]) == 1
        assert "nothing is being learned" in done["warnings"][0]
