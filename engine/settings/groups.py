"""The groups of settings the composition reads (the study core never sees them): the task and
the files beside it, how the target is asked and scored, where the study writes, and the
in-process server a study with no endpoint runs against."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from engine.decoding import setting
from engine.settings.checks import Check
from engine.study.settings import Group
from engine.task import METRICS

__all__ = ["BackendSettings", "Outputs", "ScoringSettings", "TaskSettings"]

if TYPE_CHECKING:
    MetricName = str
else:
    MetricName = Literal[METRICS]

_NAME = {"min_length": 1, "defines": True}


class TaskSettings(Group, frozen=True, kw_only=True):
    """The task, and the files of the user's that come with it."""

    name: Annotated[
        str,
        setting(
            "a built-in task name or a task file (JSONL, CSV, a JSON task, instruction induction)",
            flat="task",
            defines=True,
        ),
    ] = ""
    format: (
        Annotated[
            str,
            setting(
                "the task file's format when its extension does not say",
                flat="task_format",
                **_NAME,
            ),
        ]
        | None
    ) = None
    input_field: (
        Annotated[
            str,
            setting(
                "the key (or CSV column) of the input (input); several, comma-separated, make an "
                "input of named fields (title,body)",
                metavar="KEY",
                **_NAME,
            ),
        ]
        | None
    ) = None
    output_field: (
        Annotated[
            str, setting("the key (or CSV column) of the output (output)", metavar="KEY", **_NAME)
        ]
        | None
    ) = None
    candidates: (
        Annotated[
            str,
            setting(
                "your own candidates: one instruction a line, or JSONL {instruction, name}",
                metavar="FILE",
                owner="operator",
                why="give your own candidates inline, as the body's candidates list",
            ),
        ]
        | None
    ) = None
    templates: (
        Annotated[str, setting("TOML/JSON file of prompt templates", metavar="FILE", defines=True)]
        | None
    ) = None


class ScoringSettings(Group, frozen=True, kw_only=True):
    """How the target model is asked, and how its answers become rewards."""

    mode: Annotated[
        Literal["exec", "logprob", "judge"],
        setting(
            "reward: execution accuracy, log-probability, or a judge model's verdict",
            flat="scoring",
            defines=True,
        ),
    ] = "exec"
    metric: Annotated[MetricName, setting("override the task's metric", defines=True)] | None = None
    scorer: (
        Annotated[
            str,
            setting(
                "custom scorer: async (instruction, example, client) -> float in [0, 1]",
                pattern=r"[^:].*:.*[^:]",
                metavar="MODULE:FUNCTION",
                owner="operator",
                why="a custom scorer runs code inside the service; run such a study with "
                "ape-engine run",
                defines=True,
            ),
        ]
        | None
    ) = None
    demos: (
        Annotated[
            int,
            setting(
                "demos of the demo pool before each input (chat: as turns; default 3 on chat, "
                "0 on completions)",
                ge=0,
                le=64,
                flat="scoring_demos",
                defines=True,
            ),
        ]
        | None
    ) = None
    checks: (
        Annotated[
            list[Check],
            setting(
                "checks of the answer in place of the metric (label, json, number, regex, "
                "contains_all, contains_any, length, match), each a table with its kind; "
                "several score their weighted mean (TOML [[scoring.checks]]; when left out, "
                "the task file's)",
                max_length=100,
                flag="",
                defines=True,
            ),
        ]
        | None
    ) = None
    answer_tokens: (
        Annotated[
            int,
            setting(
                "most tokens of the target's answer (16, to the end of its first line; 256 "
                "with checks, every line)",
                ge=1,
                le=8192,
                defines=True,
            ),
        ]
        | None
    ) = None
    chat_format: Annotated[
        Literal["plain", "output-only"],
        setting(
            "chat scoring: output-only (a system message asks for the output alone)", defines=True
        ),
    ] = "output-only"
    rubric: (
        Annotated[
            str,
            setting(
                "judge scoring: a ready rubric (truthful_informative) or a rubric file",
                metavar="NAME|FILE",
                flat="judge_rubric",
                **_NAME,
            ),
        ]
        | None
    ) = None


_SERVICE = "the service keeps it in its state directory; leave it out"


class Outputs(Group, frozen=True, kw_only=True):
    """What the study writes, and where."""

    journal: (
        Annotated[
            str,
            setting(
                "journal file (.ape/journals/...)",
                metavar="PATH",
                owner="operator",
                why="the service keeps each study's journal in its state directory; leave it out",
            ),
        ]
        | None
    ) = None
    cache: (
        Annotated[
            str,
            setting(
                "response cache (.ape/cache.sqlite3)",
                metavar="PATH",
                owner="operator",
                why="the service's studies share its response cache; leave it out (no_cache: true "
                "goes without it)",
            ),
        ]
        | None
    ) = None
    cache_max_mb: Annotated[
        float,
        setting(
            "size of the response cache in MB; the oldest answers go past it",
            ge=1,
            le=1e9,
            metavar="MB",
            owner="operator",
            why="the service's operator bounds its response cache; leave it out",
        ),
    ] = 2048.0
    no_cache: Annotated[bool, setting("no response cache")] = False
    json_out: (
        Annotated[
            str,
            setting(
                "write the result as JSON",
                flag="json",
                metavar="OUT",
                owner="operator",
                why="the result is in GET /v1/studies/{id}; leave it out",
                resume=True,
            ),
        ]
        | None
    ) = None
    answer_chars: Annotated[
        int,
        setting("characters of each model answer kept in the journal and events", ge=0, le=10_000),
    ] = 200


class BackendSettings(Group, frozen=True, kw_only=True):
    """The in-process server when no endpoint is given: the simulator, or a GGUF model run by
    llama.cpp (`engine.local`)."""

    kind: (
        Annotated[
            Literal["sim", "local"],
            setting(
                "without --base-url: the simulator (sim; a task file must ask for it), or a local "
                "GGUF model (local)",
                flat="backend",
            ),
        ]
        | None
    ) = None
    local_model: Annotated[
        str,
        setting("the local model's .gguf file, or smollm2", metavar="PATH|smollm2", min_length=1),
    ] = "smollm2"
    local_threads: Annotated[int, setting("its CPU threads", ge=1, le=1024)] | None = None
    sim_latency_s: Annotated[
        float,
        setting(
            "latency of the built-in simulator, seconds",
            ge=0,
            le=600,
            flag="sim-latency",
            metavar="S",
            resume=True,
        ),
    ] = 0.0
