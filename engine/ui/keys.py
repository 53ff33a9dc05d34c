"""The terminal UI's keys: decoding the bytes a terminal sends, and what each key does.

A key is a one-character string ("c", "+", " ") or a name for a special key ("up", "down",
"escape", "enter", "ctrl-c"). `decode` turns raw terminal bytes into keys (arrow escape
sequences included, a sequence cut at the end of a read kept for the next one), and
`apply_key` turns a key into calls on a `StudyControl`: the running `Study` in-process, or an
HTTP client of the service when attached. Steps are relative to what the study shows now
(its snapshot), so a key works the same on both. `BINDINGS` is the one table the help line and
the keys table of docs/ui.md come from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import EngineError
from engine.study.snapshot import StudyControl, StudySnapshot
from engine.ui.state import UiState

__all__ = ["BINDINGS", "TERMINATE", "Binding", "apply_key", "decode", "help_text", "keys_table"]


@dataclass(frozen=True, slots=True)
class Binding:
    keys: tuple[str, ...]
    action: str
    label: str  # on the help line
    description: str  # in the keys table of docs/ui.md


BINDINGS: tuple[Binding, ...] = (
    Binding(("C", "+"), "concurrency_up", "C/c conc", "concurrency up (+25 %, at least 1)"),
    Binding(
        ("c", "-"), "concurrency_down", "", "concurrency down (-20 %, at least 1; never below 1)"
    ),
    Binding(
        ("R",),
        "rate_up",
        "R/r rate",
        "rate limits (requests and tokens per minute) up 25 %, each endpoint's from its own",
    ),
    Binding(
        ("r",),
        "rate_down",
        "",
        "rate limits down 20 % (an unlimited endpoint: a limit at 80 % of its calls/s now)",
    ),
    Binding(("B",), "budget_up", "B/b budget", "scoring-call budget up 25 % (at least n calls)"),
    Binding(
        ("b",),
        "budget_down",
        "",
        "scoring-call budget down 20 % (when unlimited: 80 % of full evaluation), never below "
        "what is spent",
    ),
    Binding(("N",), "share_up", "N/n new", "share of the budget kept for new candidates +5 points"),
    Binding(("n",), "share_down", "", "share kept for new candidates -5 points"),
    Binding(("p", " "), "pause", "p pause", "pause / resume (calls in flight finish)"),
    Binding(("up", "k"), "select_up", "↑↓ sel", "select the candidate above"),
    Binding(("down", "j"), "select_down", "", "select the candidate below"),
    Binding(("d", "x"), "drop", "d drop", "drop the selected candidate (it gets no more calls)"),
    Binding(
        ("s",),
        "stop_search",
        "s stop",
        "stop the search now and evaluate the current leader on the test pool",
    ),
    Binding(
        ("q", "ctrl-c"),
        "quit",
        "q quit",
        "quit: in-process the study is cancelled and reports; attached, `top` just detaches",
    ),
)
TERMINATE = "terminate"  # not a key: what the reader hands over on SIGTERM
_ACTIONS = {key: binding.action for binding in BINDINGS for key in binding.keys}
_ACTIONS[TERMINATE] = "quit"

_ESCAPES = {
    b"\x1b[A": "up",
    b"\x1b[B": "down",
    b"\x1b[C": "right",
    b"\x1b[D": "left",
    b"\x1bOA": "up",
    b"\x1bOB": "down",
    b"\x1bOC": "right",
    b"\x1bOD": "left",
    b"\x1b[5~": "page-up",
    b"\x1b[6~": "page-down",
}
_CONTROLS = {b"\x03": "ctrl-c", b"\r": "enter", b"\n": "enter", b"\t": "tab", b"\x7f": "backspace"}


def decode(data: bytes) -> tuple[list[str], bytes]:
    """Keys in `data` and the bytes of an escape sequence cut at its end (to prepend to the next
    read; a lone ESC that stays alone is the escape key, see `engine.ui.terminal`)."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        byte = data[i : i + 1]
        if byte == b"\x1b":
            rest = data[i:]
            match = next((seq for seq in _ESCAPES if rest.startswith(seq)), None)
            if match is not None:
                keys.append(_ESCAPES[match])
                i += len(match)
                continue
            if any(seq.startswith(rest) for seq in _ESCAPES):
                return keys, rest  # cut in the middle: wait for the rest
            if rest[1:2] in (b"[", b"O"):  # an unknown CSI/SS3 sequence: skip it whole
                end = 2
                while end < len(rest) and not (0x40 <= rest[end] <= 0x7E):
                    end += 1
                i += end + 1
                continue
            keys.append("escape")
            i += 1
            continue
        if byte in _CONTROLS:
            keys.append(_CONTROLS[byte])
            i += 1
            continue
        width = _utf8_width(data[i])
        chunk = data[i : i + width]
        if len(chunk) < width:
            return keys, chunk
        keys.append(chunk.decode("utf-8", errors="replace"))
        i += width
    return keys, b""


def _utf8_width(first: int) -> int:
    if first < 0x80:
        return 1
    if first >> 5 == 0b110:
        return 2
    if first >> 4 == 0b1110:
        return 3
    if first >> 3 == 0b11110:
        return 4
    return 1


def help_text() -> str:
    return "  ".join(binding.label for binding in BINDINGS if binding.label)


def keys_table() -> str:
    """The keys as a Markdown table (for docs/ui.md)."""
    names = {" ": "space", "up": "↑", "down": "↓", "ctrl-c": "Ctrl-C"}
    lines = ["| keys | what it does |", "|---|---|"]
    for binding in BINDINGS:
        keys = ", ".join(f"`{names.get(key, key)}`" for key in binding.keys)
        lines.append(f"| {keys} | {binding.description} |")
    return "\n".join(lines)


def apply_key(key: str, control: StudyControl, state: UiState) -> str | None:
    """Do what `key` means on `control`; return the action's name (None for an unbound key).
    What happened, or why it could not, goes to `state.say` for the status line; `quit` only
    sets `state.quit` (the caller decides whether that cancels the study or detaches)."""
    action = _ACTIONS.get(key)
    if action is None:
        return None
    try:
        _run(action, control, state)
    except EngineError as error:
        state.say(f"{action.replace('_', ' ')}: {error}")
    return action


def _run(action: str, control: StudyControl, state: UiState) -> None:
    if action == "quit":
        state.quit = True
        return
    snapshot = control.snapshot()
    if action in ("select_up", "select_down"):
        state.move(snapshot, -1 if action == "select_up" else 1)
    elif action.startswith("concurrency"):
        _concurrency(action, control, state, snapshot)
    elif action.startswith("rate"):
        _rate(action, control, state, snapshot)
    elif action.startswith("budget"):
        _budget(action, control, state, snapshot)
    elif action.startswith("share"):
        share = snapshot.proposals.new_candidate_share
        step = 0.05 if action == "share_up" else -0.05
        new = round(min(0.95, max(0.0, share + step)), 2)
        control.set_new_candidate_share(new)
        state.say(f"new-candidate share {share:.0%} -> {new:.0%}")
    elif action == "pause":
        if snapshot.status == "paused":
            control.resume()
            state.say("resumed")
        elif snapshot.status in ("running", "starting"):
            control.pause()
            state.say("paused: no new calls (p resumes)")
        else:
            state.say(f"the study is {snapshot.status}: nothing to pause")
    elif action == "stop_search":
        if snapshot.status in ("running", "paused", "starting"):
            control.stop_search()
            state.say("search stopped: evaluating the leader on the test pool")
        else:
            state.say(f"the study is {snapshot.status}: no search to stop")
    elif action == "drop":
        arm = state.selection(snapshot)
        row = next((row for row in snapshot.arms if row.arm == arm), None)
        if row is None:
            state.say("drop: no candidate selected")
        elif row.state == "dropped":
            state.say(f"#{row.arm} is dropped already")
        else:
            control.drop_arm(row.arm)
            state.say(f"dropped #{row.arm}")


def _concurrency(
    action: str, control: StudyControl, state: UiState, snapshot: StudySnapshot
) -> None:
    now = snapshot.throughput.concurrency
    if action == "concurrency_up":
        new = now + max(1, round(now * 0.25))
    else:
        new = max(1, now - max(1, round(now * 0.2)))
    if new == now:
        state.say(f"concurrency is {now} (the minimum)")
        return
    control.set_concurrency(new)
    state.say(f"concurrency {now} -> {new}")


def _rate(action: str, control: StudyControl, state: UiState, snapshot: StudySnapshot) -> None:
    """Each endpoint's limits from its own: up 25 %, down 20 %; an unlimited endpoint gets a
    limit at 80 % of the scoring calls it serves now (one endpoint: the study's calls/s)."""
    rows = snapshot.limiters
    changes: list[tuple[str, float | None, float | None, float | None, float | None]] = []
    for row in rows:
        rpm, tpm = row.requests_per_minute, row.tokens_per_minute
        if action == "rate_up":
            if rpm is None and tpm is None:
                continue
            new_rpm = None if rpm is None else rpm * 1.25
            new_tpm = None if tpm is None else tpm * 1.25
        elif rpm is None and tpm is None:
            calls_per_minute = _calls_per_s(snapshot, row.endpoint) * 60.0
            if calls_per_minute <= 0:
                continue
            new_rpm, new_tpm = max(1.0, math.floor(calls_per_minute * 0.8)), None
        else:
            new_rpm = None if rpm is None else max(1.0, rpm * 0.8)
            new_tpm = None if tpm is None else max(1.0, tpm * 0.8)
        changes.append((row.endpoint, rpm, tpm, new_rpm, new_tpm))
    if not changes:
        if action == "rate_up":
            state.say("rate limits are off already (r sets one)")
        else:
            state.say("rate limits are off and no call was measured yet to set one from")
        return
    for endpoint, _, _, new_rpm, new_tpm in changes:
        control.set_rate_limits(
            requests_per_minute=new_rpm,
            tokens_per_minute=new_tpm,
            endpoint=endpoint if len(rows) > 1 else None,
        )
    endpoint, rpm, tpm, new_rpm, new_tpm = changes[0]
    change = f"{_limits(rpm, tpm)} -> {_limits(new_rpm, new_tpm)}"
    if len(rows) > 1:
        more = f" (and {len(changes) - 1} more endpoints)" if len(changes) > 1 else ""
        change = f"{endpoint} {change}{more}"
    state.say(f"rate limits: {change}")


def _calls_per_s(snapshot: StudySnapshot, endpoint: str) -> float:
    """The scoring calls per second `endpoint` serves now: its share of the study's."""
    calls = snapshot.throughput.calls_per_s
    row = next((row for row in snapshot.endpoints if row.endpoint == endpoint), None)
    if row is None:  # a snapshot without endpoint rows: the first limiter is the target's
        first = snapshot.limiters[0].endpoint if snapshot.limiters else None
        return calls if endpoint == first else 0.0
    return calls * row.share if row.role == "target" else 0.0


def _limits(rpm: float | None, tpm: float | None) -> str:
    def one(value: float | None, unit: str) -> str:
        return f"{unit} off" if value is None else f"{value:,.0f} {unit}"

    return f"{one(rpm, 'rpm')}, {one(tpm, 'tpm')}"


def _budget(action: str, control: StudyControl, state: UiState, snapshot: StudySnapshot) -> None:
    row = next((row for row in snapshot.budgets if row.name == "scoring_calls"), None)
    spent = row.spent if row else 0.0
    limit = row.limit if row else None
    n = max(1, snapshot.n)
    if action == "budget_up":
        if limit is None:
            state.say("the scoring budget is unlimited already (b sets one)")
            return
        new = limit + max(round(limit * 0.25), n)
    else:
        base = limit if limit is not None else max(len(snapshot.arms) * n, spent)
        new = max(math.ceil(spent) + 1, round(base * 0.8))
        if limit is not None and new >= limit:
            state.say(f"scoring budget {limit:.0f}: {spent:.0f} spent, cannot go lower")
            return
    control.set_budget("scoring_calls", new)
    before = "unlimited" if limit is None else f"{limit:.0f}"
    state.say(f"scoring budget {before} -> {new:.0f} calls")
