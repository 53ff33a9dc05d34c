"""`ape-engine top [URL]`: the live screen of a study running in an `ape-engine serve` process.

It lists the service's studies (`--list` prints them and stops) and follows one (`--study ID`, else the first running one, else
the first): snapshots come from the study's server-sent-event stream (`event: snapshot`), and
when the stream cannot be opened or breaks, from polling `GET /v1/studies/{id}` every 0.25 s.
Keys PATCH the study (`engine.ui.remote.HttpControl`); `q` only detaches, the study goes on in
the service. Without a terminal (a pipe, CI) or with `--plain` it prints a plain line every few
seconds until the study ends. When the study it follows has ended, the screen shows the held-out
result (the winner, the runner-up and the human instruction on the test pool), and `top` prints
it when it stops (`engine.ui.heldout`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import anyio
import orjson
from rich.console import Console

from engine.errors import ConfigError
from engine.study.snapshot import SnapshotError, StudySnapshot
from engine.ui import text as fmt
from engine.ui.heldout import held_out_lines
from engine.ui.live import LiveScreen
from engine.ui.output import output_console
from engine.ui.remote import HttpControl, ServiceClient, ServiceError
from engine.ui.render import plain_line
from engine.ui.terminal import KeyReader

__all__ = [
    "DEFAULT_TOKEN_ENV",
    "DEFAULT_URL",
    "follow",
    "pick_study",
    "top",
]

DEFAULT_URL = "http://127.0.0.1:8750"  # the port `ape-engine serve` binds by default
DEFAULT_TOKEN_ENV = "APE_ENGINE_TOKEN"
POLL_S = 0.25
_FRAME_S = 0.05


def pick_study(studies: list[dict[str, Any]], wanted: str | None, url: str) -> str:
    """The id to follow: `wanted` (an id or a unique prefix of one), else the first running
    study, else the first one."""
    ids = [str(study.get("id")) for study in studies if study.get("id") is not None]
    if not ids:
        raise ConfigError(f"no study on the service at {url}; create one with POST /v1/studies")
    if wanted:
        matches = [study_id for study_id in ids if study_id.startswith(wanted)]
        if wanted in ids:
            return wanted
        if len(matches) == 1:
            return matches[0]
        raise ConfigError(
            f"--study {wanted}: {'several studies match' if matches else 'no such study'} on "
            f"{url}; the studies are {', '.join(ids)}"
        )
    for study in studies:
        if study.get("status") == "running":
            return str(study["id"])
    return ids[0]


async def follow(
    client: ServiceClient,
    study_id: str,
    on_snapshot: Callable[[StudySnapshot], None],
    *,
    on_notice: Callable[[str], None] = lambda text: None,
    poll_s: float = POLL_S,
    give_up_after_s: float | None = 10.0,
) -> StudySnapshot | None:
    """Hand every new snapshot of the study to `on_snapshot` until it is done; returns the last.
    The event stream first; polling when it fails or ends early. A service unreachable for
    longer than `give_up_after_s` raises `ServiceError` (None: keep trying)."""
    last: StudySnapshot | None = None
    try:
        async for event, data in client.events(study_id):
            if event == "snapshot":
                last = StudySnapshot.from_json(orjson.loads(data))
                on_snapshot(last)
                if last.done:
                    return last
            elif event == "end":
                last = await client.snapshot(study_id)
                on_snapshot(last)
                return last
        on_notice(f"the event stream ended early; polling every {poll_s:g} s")
    except (ServiceError, SnapshotError, orjson.JSONDecodeError) as error:
        if isinstance(error, ServiceError) and error.status in (401, 403):
            raise
        on_notice(f"no event stream ({error}); polling every {poll_s:g} s")
    failing_since: float | None = None
    while True:
        try:
            last = await client.snapshot(study_id)
        except ServiceError as error:
            if error.status in (401, 403, 404):
                raise
            now = anyio.current_time()
            failing_since = now if failing_since is None else failing_since
            if give_up_after_s is not None and now - failing_since > give_up_after_s:
                raise
            on_notice(f"service unreachable, retrying: {error}")
        else:
            failing_since = None
            on_snapshot(last)
            if last.done:
                return last
        await anyio.sleep(poll_s)


async def _plain(
    client: ServiceClient, study_id: str, console: Console, every_s: float
) -> StudySnapshot | None:
    last_line = -math.inf

    def show(snapshot: StudySnapshot) -> None:
        nonlocal last_line
        now = anyio.current_time()
        if snapshot.done or now - last_line >= every_s:
            last_line = now
            console.print(f"{study_id} {plain_line(snapshot)}", highlight=False, markup=False)

    def notice(text: str) -> None:
        console.print(f"{study_id} {text}", highlight=False, markup=False)

    last = await follow(client, study_id, show, on_notice=notice)
    if last is not None:
        _print_held_out(console, last)
    return last


def _print_held_out(console: Console, snapshot: StudySnapshot) -> None:
    """The ended study's held-out result, as lines that stay in the terminal."""
    for line in held_out_lines(snapshot):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


async def _live(
    client: ServiceClient,
    study_id: str,
    console: Console,
    first: StudySnapshot,
    reader: KeyReader | None,
) -> None:
    screen = LiveScreen(console, reader=reader, source=client.url.split("://", 1)[-1])
    control = HttpControl(client, study_id, first, on_error=screen.state.say)

    async def stream() -> None:
        last = await follow(
            client,
            study_id,
            control.receive,
            on_notice=screen.state.say,
            give_up_after_s=None,
        )
        if last is not None:
            screen.state.say(f"the study is {last.status}: q leaves")

    screen.start()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(control.run)
            group.start_soon(stream)
            drawn: tuple[StudySnapshot | None, str] = (None, "")
            while not screen.state.quit:
                pressed = screen.handle_keys(control)
                now = (control.snapshot(), screen.state.current_notice())
                if pressed or now[0] is not drawn[0] or now[1] != drawn[1]:
                    screen.draw(now[0], force=True)
                    drawn = now
                await anyio.sleep(_FRAME_S)
            await control.flush()  # a key pressed just before q still reaches the service
            group.cancel_scope.cancel()
    finally:
        screen.stop()
    _print_held_out(console, control.snapshot())  # on the normal screen, once it ended


def study_lines(studies: list[dict[str, Any]]) -> list[str]:
    """The studies as aligned lines: id, status, task, policy, elapsed."""
    lines = [f"{'id':<14} {'status':<10} {'task':<24} {'policy':<12} elapsed"]
    for row in studies:
        elapsed = row.get("elapsed_s")
        lines.append(
            f"{row.get('id', '?')!s:<14} {row.get('status', '?')!s:<10} "
            f"{row.get('task', '?')!s:<24} {row.get('policy', '?')!s:<12} "
            f"{fmt.duration(elapsed) if isinstance(elapsed, int | float) else '-'}"
        )
    return lines


async def top(
    url: str,
    *,
    study: str | None = None,
    list_only: bool = False,
    token_env: str | None = DEFAULT_TOKEN_ENV,
    console: Console | None = None,
    plain: bool = False,
    every_s: float = 2.0,
    reader: KeyReader | None = None,
) -> int:
    console = console or output_console()
    async with ServiceClient.from_env(url, token_env) as client:
        studies = await client.studies()
        if list_only:
            for line in study_lines(studies):
                console.print(line, highlight=False, markup=False, soft_wrap=True)
            return 0
        study_id = pick_study(studies, study, client.url)
        first = await client.snapshot(study_id)
        if plain or not console.is_terminal or console.is_dumb_terminal:
            await _plain(client, study_id, console, every_s)
        else:
            await _live(client, study_id, console, first, reader)
    return 0
