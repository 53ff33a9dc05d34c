"""`StudySnapshot.from_json` rebuilds what `to_json` gives, through real JSON, and names the
field it cannot read by its path."""

from __future__ import annotations

import re

import orjson
import pytest

from engine.study.budgets import Spend
from engine.study.snapshot import SnapshotError, SnapshotExtra, StudySnapshot
from tests.ui.snapshots import make_snapshot


def through_json(snapshot: StudySnapshot) -> StudySnapshot:
    return StudySnapshot.from_json(orjson.loads(orjson.dumps(snapshot.to_json())))


def test_round_trip_through_json() -> None:
    extra = SnapshotExtra(spend=Spend(tokens=3), errors={"timeout": "call failed"})
    snapshot = make_snapshot(extra=extra)
    again = through_json(snapshot)
    assert again == snapshot
    assert again.extra.spend.tokens == 3 and again.extra.errors == {"timeout": "call failed"}
    assert isinstance(again.arms, tuple) and isinstance(again.throughput.recent_calls_per_s, tuple)
    assert again.arms[3].parent == 1 and again.limiters[0].adaptive is True


def test_endpoint_rows_round_trip_and_may_be_missing() -> None:
    from tests.ui.test_render import pooled_snapshot

    snapshot = pooled_snapshot()
    assert through_json(snapshot) == snapshot
    data = snapshot.to_json()
    del data["endpoints"]  # a service of an earlier version
    assert StudySnapshot.from_json(data).endpoints == ()


def test_unknown_keys_are_ignored_and_defaults_may_be_missing() -> None:
    data = make_snapshot().to_json()
    data["added_later"] = 1
    data["arms"][0]["score_now"] = 0.5
    for name in ("message", "done", "winner", "extra"):
        del data[name]
    again = StudySnapshot.from_json(data)
    assert again.message == "" and again.done is False and again.winner is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("arms"), "snapshot JSON: arms: missing; it is required"),
        (lambda d: d["arms"][2].pop("mean"), "arms[2].mean: missing; it is required"),
        (lambda d: d["arms"][0].update(pulls="many"), "arms[0].pulls: Expected `int`, got `str`"),
        (
            lambda d: d["throughput"].update(errors=True),
            "throughput.errors: Expected `int`, got `bool`",
        ),
        (
            lambda d: d["budgets"][1].update(limit="none"),
            "budgets[1].limit: Expected `float | null`, got `str`",
        ),
        (lambda d: d.update(limiters={}), "limiters: Expected `array`, got `object`"),
        (lambda d: d.update(proposals=[]), "proposals: Expected `object`, got `array`"),
        (lambda d: d.update(status=3), "snapshot JSON: status: Expected `str`, got `int`"),
    ],
)
def test_a_bad_field_is_named(change, message: str) -> None:  # type: ignore[no-untyped-def]
    data = make_snapshot().to_json()
    change(data)
    with pytest.raises(SnapshotError, match=re.escape(message)):
        StudySnapshot.from_json(data)


def test_not_an_object() -> None:
    with pytest.raises(SnapshotError, match="snapshot JSON: Expected `object`, got `array`"):
        StudySnapshot.from_json([])
