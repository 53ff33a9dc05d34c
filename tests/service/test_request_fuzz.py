"""Fuzzing the request decoders: random bytes, random JSON, and bodies of the right shape with
one wrong value planted -- a value out of its type or range, any value in a field the service
owns (a URL, a key's variable or file, the cache, a scorer), an endpoint or task name the
service does not offer. Never a traceback or a 500: always a 400 `RequestError` naming the field
(the planted one), and nothing changed, checked on the decoders and on a live service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.service.requests import (
    SERVICE_OWNED,
    Example,
    InlineTask,
    Patch,
    PatchStudy,
    RateLimits,
    RequestError,
    RequestSettings,
    parse_create,
    parse_patch,
)
from engine.settings import SETTINGS as ALL_SETTINGS
from engine.study.budgets import Price
from engine.study.settings import BUDGET_NAMES
from tests.service.helpers import Service, running_service, simulator, study_config

SETTINGS = {f.name: f.type for f in msgspec.structs.fields(RequestSettings)}
STUDY_SETTINGS = {one.flat: one.type for one in ALL_SETTINGS}
PATCH_FIELDS = {f.name: f.type for f in msgspec.structs.fields(PatchStudy)}
RATE_FIELDS = {f.name: f.type for f in msgspec.structs.fields(RateLimits)}
EXAMPLE_FIELDS = {f.name: f.type for f in msgspec.structs.fields(Example)}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.integers(2**64, 2**70)  # past what a machine integer (and orjson) holds
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def encode(value: Any) -> bytes:
    """JSON as a client may send it: integers of any size (orjson stops at 64 bits)."""
    return json.dumps(value).encode()


def fits(value: Any, kind: Any) -> bool:
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return False
    return True


def wrong(kind: Any) -> st.SearchStrategy[Any]:
    """A JSON value that `kind` refuses."""
    return json_values.filter(lambda value: not fits(value, kind))


def refused(call: Any, raw: bytes) -> RequestError | None:
    """The `RequestError` a decoder raised, checked for its shape; None when it accepted."""
    error: RequestError | None = None
    try:
        call(raw)
    except RequestError as caught:
        error = caught
    if error is not None:
        assert error.status == 400
        assert error.field, error
        assert str(error).startswith(f"{error.field}: "), error
    return error


def under(field: str | None, path: str) -> bool:
    return field is not None and (field == path or field.startswith((f"{path}.", f"{path}[")))


@st.composite
def bad_creates(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A create body, good but for one planted value, and the path of that value."""
    which = draw(st.sampled_from(("setting", "owned", "example")))
    if which == "setting":
        name = draw(st.sampled_from(sorted(SETTINGS)))
        config = {"task": "larger_number", "concurrency": 3, name: draw(wrong(SETTINGS[name]))}
        return {"config": config}, f"config.{name}"
    if which == "owned":  # whatever its value, a field the service owns is refused
        name = draw(st.sampled_from(sorted(SERVICE_OWNED)))
        config = {"task": "larger_number", name: draw(json_values)}
        return {"config": config}, f"config.{name}"
    examples: list[dict[str, Any]] = [{"input": f"{i} 1", "output": str(i)} for i in range(3)]
    index = draw(st.integers(0, 2))
    key = draw(st.sampled_from(("input", "output", "choices")))
    examples[index][key] = draw(wrong(EXAMPLE_FIELDS[key]))
    body = {"task": {"name": "bigger", "examples": examples}}
    return body, f"task.examples[{index}].{key}"


names = st.lists(
    st.sampled_from(["..", "/", "a", "b.json", "%2e", "~", ".", " ", "\\", "\x00"]),
    min_size=1,
    max_size=6,
).map("".join)


@st.composite
def bad_names(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A create body the decoder takes but the service refuses: a name it does not offer (an
    endpoint, a model, a task file outside its task folder), a concurrency over its cap."""
    config: dict[str, Any] = {"task": "larger_number", "endpoint": "sim"}
    which = draw(st.sampled_from(("endpoint", "model", "task", "concurrency", "templates")))
    if which == "endpoint":
        config["endpoint"] = draw(
            st.from_regex(r"\A[a-z][a-z0-9_]{0,10}\Z").filter(lambda name: name != "sim")
        )
    elif which == "model":
        config["model"] = draw(st.text(min_size=1, max_size=12).filter(lambda m: m != "sim-1"))
    elif which == "task":
        config["task"] = draw(
            st.sampled_from(["/etc/passwd", "../../etc/passwd", "a/../../b", ".hidden"]) | names
        )
    elif which == "concurrency":
        config["concurrency"] = draw(st.integers(LIVE_CAP + 1, 100_000))
    else:
        config["templates"] = draw(names)
    return {"config": config}, f"config.{which}"


@st.composite
def bad_patches(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A PATCH body with good values beside one planted bad one, and the path of that one."""
    good: dict[str, Any] = {"concurrency": 7, "new_candidate_share": 0.3, "paused": False}
    name = draw(st.sampled_from(sorted(PATCH_FIELDS)))
    body = {key: value for key, value in good.items() if key != name}
    if name in ("rate_limits", "endpoint_rate_limits") and draw(st.booleans()):
        limit = draw(st.sampled_from(sorted(RATE_FIELDS)))
        body[name] = {limit: draw(wrong(RATE_FIELDS[limit]))}
        return body, f"{name}.{limit}"
    if name == "budgets" and draw(st.booleans()):
        budget = draw(st.sampled_from(BUDGET_NAMES))
        body[name] = {budget: draw(wrong(STUDY_SETTINGS[f"budget_{budget}"]))}
        return body, f"budgets.{budget}"
    body[name] = draw(wrong(PATCH_FIELDS[name]))
    return body, name


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_are_refused_with_a_field_or_decoded(raw: bytes) -> None:
    refused(parse_create, raw)
    refused(parse_patch, raw)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_is_refused_with_a_field_or_decoded(value: Any) -> None:
    raw = encode(value)
    refused(parse_create, raw)
    if refused(parse_patch, raw) is None:
        assert isinstance(value, dict) and set(value) <= set(PATCH_FIELDS)


@settings(max_examples=300, deadline=None)
@given(bad_creates())
def test_a_planted_bad_value_in_a_create_is_named(case: tuple[dict[str, Any], str]) -> None:
    body, path = case
    error = refused(parse_create, encode(body))
    assert error is not None, body
    assert under(error.field, path), (body, str(error))


@settings(max_examples=300, deadline=None)
@given(bad_patches())
def test_a_planted_bad_value_in_a_patch_is_named(case: tuple[dict[str, Any], str]) -> None:
    body, path = case
    error = refused(parse_patch, encode(body))
    assert error is not None, body
    assert under(error.field, path), (body, str(error))


def test_good_bodies_decode_to_what_the_manager_applies() -> None:
    patch = parse_patch(
        b'{"concurrency": 5, "budgets": {"usd": 2, "seconds": null}, "drop": [1],'
        b' "rate_limits": {"requests_per_minute": 900}}'
    )
    assert patch == Patch(
        concurrency=5,
        rate_limits={"requests_per_minute": 900.0},
        budgets={"usd": 2.0, "seconds": None},
        drop=(1,),
    )
    settings, task = parse_create(
        b'{"config": {"concurrency": 4, "prices": {"m": {"input": 1}}}, "task": {"name": "t",'
        b' "examples": [{"input": "a", "output": ["b", "c"], "choices": ["b", "c", "d"]}],'
        b' "metric": "multiple_choice"}}'
    )
    assert isinstance(task, InlineTask) and task.examples[0].outputs == ["b", "c"]
    assert settings == {
        "concurrency": 4,
        "prices": {"m": Price(1.0, 0.0)},
        "metric": "multiple_choice",
    }


# -- a live service: a 400 naming the planted field, and nothing changed ----------------------


def controls(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Everything a PATCH can change, as the snapshot shows it."""
    return {
        "status": snapshot["status"],
        "concurrency": snapshot["throughput"]["concurrency"],
        "budgets": {b["name"]: b["limit"] for b in snapshot["budgets"]},
        "share": snapshot["proposals"]["new_candidate_share"],
        "limits": [
            (x["requests_per_minute"], x["tokens_per_minute"]) for x in snapshot["limiters"]
        ],
        "dropped": [a["arm"] for a in snapshot["arms"] if a["state"] == "dropped"],
    }


def state_files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


LIVE_CAP = 64  # the live service's cap on a study's concurrency


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlockingPortal, Service, str]]:
    """A service holding one paused study (so nothing moves between two snapshots)."""
    state = tmp_path_factory.mktemp("state")
    tasks = tmp_path_factory.mktemp("tasks")
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(simulator(latency_base_s=0.02)) as base_url,
        portal.wrap_async_context_manager(
            running_service(
                state, sim=base_url, operator={"max_concurrency": LIVE_CAP, "task_dir": str(tasks)}
            )
        ) as service,
    ):
        study_id = portal.call(service.create, study_config())
        portal.call(service.wait_for, study_id, lambda s: len(s["arms"]) >= 3)
        status, _ = portal.call(service.call, "PATCH", f"/v1/studies/{study_id}", {"paused": True})
        assert status == 200
        yield portal, service, study_id


@pytest.mark.integration
@settings(max_examples=60, deadline=None)
@given(
    bad_patches()
    | st.integers(LIVE_CAP + 1, 100_000).map(lambda c: ({"concurrency": c}, "concurrency"))
)
def test_a_bad_patch_changes_nothing_in_a_live_study(
    live: tuple[BlockingPortal, Service, str], case: tuple[dict[str, Any], str]
) -> None:
    portal, service, study_id = live
    body, path = case
    before = controls(portal.call(service.snapshot, study_id))
    status, answer = portal.call(
        lambda: service.call("PATCH", f"/v1/studies/{study_id}", raw=encode(body))
    )
    assert status == 400, (body, answer)
    assert under(answer["error"]["field"], path), (body, answer)
    assert controls(portal.call(service.snapshot, study_id)) == before, body


@pytest.mark.integration
@settings(max_examples=60, deadline=None)
@given(bad_creates() | bad_names() | st.binary(max_size=32).map(lambda raw: (raw, "")))
def test_a_bad_create_leaves_nothing_behind_in_a_live_service(
    live: tuple[BlockingPortal, Service, str], case: tuple[Any, str]
) -> None:
    portal, service, _ = live
    body, path = case
    entries = dict(service.manager.entries)
    files = state_files(service.state.root)
    raw = body if isinstance(body, bytes) else encode(body)
    status, answer = portal.call(lambda: service.call("POST", "/v1/studies", raw=raw))
    assert status == 400, (body, answer)
    assert answer["error"]["field"] and (not path or under(answer["error"]["field"], path))
    assert service.manager.entries == entries
    assert state_files(service.state.root) == files
