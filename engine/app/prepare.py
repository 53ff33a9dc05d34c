"""Everything a study needs that can fail without a call: the task and its pools, the metric,
prices, templates, a custom scorer, the user's own candidates, the journal's place, and -- for a
resumed study -- that the journal belongs to this task and these settings, and that every record
in it fits the pools. Then the spend it may reach. A journal named after its task keeps to its
folder whatever the task's name holds (`engine.task.paths`).
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

from engine.app.endpoints import effective, resolve_endpoints
from engine.app.estimate import SpendEstimate, estimate_spend
from engine.app.scoring import load_scorer_function
from engine.decoding import Invalid, convert
from engine.errors import ConfigError, JournalError, setting, setting_value
from engine.propose import Templates, UserCandidate, load_candidates, load_templates
from engine.settings import SETTINGS, Role, ScoringSettings, StudyConfig, TaskSettings
from engine.settings.checks import Check, check_examples, checks_binary
from engine.study.budgets import PriceTable
from engine.study.events import EvaluationDone, PullDone
from engine.study.journal import Replay, replay_journal, task_fingerprint
from engine.study.judging import RUBRICS, load_rubric
from engine.study.locks import FileLock
from engine.study.prompting import scoring_demo_count
from engine.study.scheduler import reward_kind
from engine.study.scoring import ScorerFunction
from engine.study.settings import ProposalPlan, SearchSettings
from engine.task import METRICS, Fields, Splits, Task, load_task, split_task
from engine.task.paths import file_stem, inside

__all__ = [
    "DEFAULT_STATE_DIR",
    "DEFINING",
    "Prepared",
    "config_of",
    "prepare",
    "prepare_resume",
    "study_checks",
    "study_splits",
    "study_task",
]

DEFAULT_STATE_DIR = Path(".ape")

#: Settings that define a study: a journal is resumed only with the same values.
DEFINING = tuple(one for one in SETTINGS if one.defines)


@dataclass(slots=True)
class Prepared:
    config: StudyConfig
    task: Task
    splits: Splits
    prices: PriceTable
    estimate: SpendEstimate
    study_id: str
    journal_path: Path
    replay: Replay | None = None
    templates: Templates = field(default_factory=Templates)
    custom_scorer: ScorerFunction | None = None
    candidates: tuple[UserCandidate, ...] = ()
    #: the journal's lock when the caller took it before reading the journal (`resume`, the
    #: service); `open_study` takes it itself otherwise
    lock: FileLock | None = None
    # the target's settings taken from the environment, as the official client takes them
    # (base_url from $OPENAI_BASE_URL, api_key_env OPENAI_API_KEY)
    from_environment: tuple[str, ...] = ()
    #: the checks that score the answers (the settings', else the task file's); none: the metric
    checks: tuple[Check, ...] = ()

    @property
    def rewards(self) -> Literal["binary", "continuous"]:
        """The scheduler's kind of rewards: binary when each is 0 or 1, else continuous."""
        scoring = self.config.scoring
        if self.checks:
            return "binary" if checks_binary(self.checks, self.task.metric) else "continuous"
        kind = reward_kind(scoring.mode, self.task.metric, custom=bool(scoring.scorer))
        return "binary" if kind == "binary" else "continuous"

    @property
    def proposal_model(self) -> str:
        return effective(self.config.proposal, self.config.target).model or ""

    @property
    def task_name(self) -> str:
        return self.task.name

    @property
    def scoring_pool(self) -> int:
        return len(self.splits.scoring)

    @property
    def worst_case(self) -> tuple[float, int, str]:
        estimate = self.estimate
        calls = estimate.full_scoring_calls + estimate.proposal_calls + estimate.evaluation_calls
        sizes = f"{estimate.candidates} candidates x {estimate.n} scoring examples"
        return estimate.memory_mb, calls, sizes

    @property
    def task_warnings(self) -> tuple[str, ...]:
        return self.task.warnings


def study_splits(search: SearchSettings, task: Task) -> Splits:
    """The task's three pools as the study's search settings draw them."""
    sizes: dict[str, int] = {}
    for name in ("demo_size", "scoring_size", "test_size"):
        value = getattr(search, name)
        if value is not None:
            sizes[name] = value
    return split_task(task, seed=search.seed, **sizes)


def study_task(task: TaskSettings, metric: str | None, seed: int) -> Task:
    """The task the settings name, with its metric (`metric`, else the task's own)."""
    if not task.name:
        raise ConfigError(
            f"task: give a built-in task name or a task file ({setting_value('task', 'NAME|PATH')})"
        )
    fields = Fields(task.input_field or "input", task.output_field or "output")
    loaded = load_task(task.name, seed=seed, format=task.format, fields=fields)
    return _with_metric(metric, loaded)


def _with_metric(metric: str | None, task: Task) -> Task:
    if metric is not None:
        if metric not in METRICS:
            raise ConfigError(
                f"metric: unknown metric {metric!r}; choose one of {', '.join(METRICS)}"
            )
        task = dataclasses.replace(task, metric=metric)
    return task


def study_checks(scoring: ScoringSettings, task: Task) -> tuple[Check, ...]:
    """The checks that score the answers: the settings', else the task file's (decoded as the
    settings' are, a bad one named by its place in the file); none: the metric scores them."""
    if scoring.checks is not None:
        return tuple(scoring.checks)
    if task.checks is None:
        return ()
    try:
        return tuple(convert(list(task.checks), list[Check]))
    except Invalid as error:
        raise ConfigError(f"{task.source or task.name}: {error.within('checks')}") from None


def _with_checks(
    config: StudyConfig, task: Task, splits: Splits
) -> tuple[StudyConfig, tuple[Check, ...]]:
    """The study's checks (`study_checks`), checked; a task file's are put in the settings,
    so that the journal's header and the result say what scored the study."""
    checks = study_checks(config.scoring, task)
    if checks and config.scoring.checks is None:
        config = config.replace(checks=[msgspec.to_builtins(check) for check in checks])
    _check_checks(config, checks, splits)
    return config, checks


def _check_checks(config: StudyConfig, checks: tuple[Check, ...], splits: Splits) -> None:
    """Checks score the text of an answer: with execution accuracy only, and every expected
    output they compare with must be one they read."""
    if not checks:
        return
    scoring = config.scoring
    if scoring.mode != "exec":
        raise ConfigError(
            f"checks: checks score the answer's text; use them with --scoring exec, not "
            f"{scoring.mode}"
        )
    if scoring.scorer is not None:
        raise ConfigError(
            "checks: a custom scorer scores the answers itself; give one or the other"
        )
    check_examples(checks, (*splits.demo, *splits.scoring, *splits.test), "checks")


def _check_demo_search(config: StudyConfig) -> None:
    """The demo search varies the demos a scoring prompt shows: it needs some, and a scorer
    that shows them."""
    plan = config.proposals
    if not plan.demo_search:
        return
    if config.scoring.scorer is not None:
        raise ConfigError(
            "demo_search: a custom scorer builds its own prompts, so it shows no demo set; "
            "give one or the other"
        )
    if scoring_demo_count(config.scoring.demos, config.target.api or "chat") == 0:
        raise ConfigError(
            "demo_search: the scoring prompt shows no demos (scoring_demos 0, the default on "
            "completions); give --scoring-demos K"
        )
    if plan.variant_rounds == 0:
        raise ConfigError("demo_search: demo sets come in the variant rounds; give variant_rounds")


def _templates(settings: TaskSettings, task: Task) -> Templates:
    """The prompt templates: the defaults, or the file's, checked against the task's fields
    (`Templates.for_task`: a placeholder may name one; each ``Input: {input}`` shows them
    labelled)."""
    where = f"templates file {settings.templates!r}" if settings.templates else "templates"
    return load_templates(settings.templates).for_task(task.fields, where)


def _candidates(
    path: str | None, plan: ProposalPlan, replay: Replay | None
) -> tuple[UserCandidate, ...]:
    """The user's own candidates; a resumed study that has them in its journal needs no file."""
    if path is None:
        if plan.initial_candidates == 0 and not plan.include_human:
            raise ConfigError(
                f"{setting('initial_candidates')}: 0 proposals and no candidates of your own "
                f"leaves nothing to select; give {setting_value('candidates', 'FILE')} (or "
                f"{setting_value('include_human', 'true')})"
            )
        return ()
    if replay is not None and any(
        getattr(event, "origin", None) == "user" for event in replay.events
    ):
        return ()
    candidates = load_candidates(path)
    if len(candidates) > plan.max_candidates:
        raise ConfigError(
            f"candidates: the file holds {len(candidates)} candidates, more than max_candidates "
            f"({plan.max_candidates}); raise {setting('max_candidates')}"
        )
    return candidates


def _check_judge(scoring: ScoringSettings) -> None:
    if scoring.mode != "judge":
        return
    if scoring.rubric is None:
        raise ConfigError(
            f"{setting('judge_rubric')}: judge scoring needs a rubric: "
            f"{' or '.join(setting_value('judge_rubric', one) for one in RUBRICS)}, or a rubric "
            "file"
        )
    load_rubric(scoring.rubric)


def _models(config: StudyConfig) -> set[str]:
    """Every model the study pays for: each role's, and each of its endpoints' own."""
    roles = [config.target, config.proposal]
    if config.scoring.mode == "judge":
        roles.append(config.judge)
    models: set[str] = set()
    for role in roles:
        models.add(effective(role, config.target).model or "")
        models |= {one.model for one in role.endpoints if one.model}
    return models - {""}


def _check_prices(config: StudyConfig, prices: PriceTable) -> None:
    if config.budgets.usd is None:
        return
    for model in sorted(_models(config)):
        if model not in prices:
            raise ConfigError(
                f"budget_usd: model {model!r} has no price; add it to the config file as "
                f'[prices."{model}"] input = ... output = ... (USD per million tokens)'
            )


def config_of(replay: Replay) -> StudyConfig:
    """The settings a journal's study was started with."""
    return StudyConfig.from_json(replay.started.config, where=f"journal {str(replay.path)!r}")


def _check_records(replay: Replay, splits: Splits) -> None:
    """Every observation of the journal is of an example its pools hold."""
    for index, event in enumerate(replay.events):
        if isinstance(event, PullDone | EvaluationDone):
            size = len(splits.scoring if isinstance(event, PullDone) else splits.test)
            if event.example >= size:
                raise JournalError(
                    f"{replay.where(index)}: a {event.kind} of example {event.example} (the "
                    f"pool has {size}); the journal does not belong to these pools"
                )


def _check_replay(replay: Replay, config: StudyConfig, task: Task) -> None:
    started = replay.started
    if started.task.fingerprint != task_fingerprint(task):
        raise JournalError(
            f"journal of study {replay.study_id}: it was made on task {started.task.name!r} "
            f"with other examples (fingerprint {started.task.fingerprint}, this task is "
            f"{task_fingerprint(task)}); resume it with the task it was started on"
        )
    before = config_of(replay)
    for one in DEFINING:
        if before.get(one) != config.get(one):
            raise JournalError(
                f"journal of study {replay.study_id}: {one.flat} was {before.get(one)!r}, "
                f"not {config.get(one)!r}; a journal resumes only with the settings "
                "that define its study"
            )


def _journal_path(
    journal: str | None, task: Task, study_id: str, resuming: bool, journals: Path | None
) -> Path:
    folder = journals if journals is not None else DEFAULT_STATE_DIR / "journals"
    if journal:
        path = Path(journal)
    else:  # named after the task, whatever its name holds: it stays in its folder
        name = f"{file_stem(task.name)}-{file_stem(study_id)}.jsonl"
        inside(folder, name)
        path = folder / name
    if not resuming and path.exists() and path.stat().st_size > 0:
        raise JournalError(
            f"journal: {path} already holds a study; continue it with 'ape-engine resume "
            f"{path}', or give another {setting_value('journal', 'PATH')} (or none: a new file "
            "per study)"
        )
    return path


def _resolved(
    config: StudyConfig, environ: Mapping[str, str] | None, *, builtin: bool
) -> StudyConfig:
    """`config` with its target endpoint and backend decided."""
    roles = {"target": config.target, "proposal": config.proposal, "judge": config.judge}
    target, backend = resolve_endpoints(
        roles, config.backend, config.task.name, environ, builtin=builtin
    )
    if target == config.target and backend == config.backend:
        return config
    return config.replace(target=target, backend=backend)


def _from_environment(
    given: Role, decided: Role, environ: Mapping[str, str] | None
) -> tuple[str, ...]:
    """The target's settings `resolve_endpoints` took from the environment."""
    env = os.environ if environ is None else environ
    taken = []
    from_env = env.get("OPENAI_BASE_URL", "").strip()
    if decided.base_url != given.base_url and decided.base_url == from_env:
        taken.append("base_url")
    if decided.api_key_env != given.api_key_env:
        taken.append("api_key_env")
    return tuple(taken)


def _estimate(
    config: StudyConfig, task: Task, splits: Splits, prices: PriceTable, candidates: int
) -> SpendEstimate:
    return estimate_spend(
        config.study(candidates),
        config.scoring,
        splits,
        api=config.target.api or "chat",
        human=bool(task.human_instruction),
        prices=prices,
        scoring_model=config.target.model or "",
        proposal_model=effective(config.proposal, config.target).model or "",
        judge_model=effective(config.judge, config.target).model or "",
    )


def prepare(
    config: StudyConfig,
    *,
    replay: Replay | None = None,
    journals: Path | None = None,
    environ: Mapping[str, str] | None = None,
    task: Task | None = None,
    scorer: ScorerFunction | None = None,
) -> Prepared:
    """Load and check everything a study needs before its first call; without a journal path
    in `config`, the study's journal is a new file in `journals` (.ape/journals). The endpoint
    is decided first (`engine.app.endpoints.resolve_endpoints`, reading `environ`). A `task`
    value (examples in memory) stands for `config.task`; a `scorer` function for the one
    `config.scorer` names (which then only records it)."""
    if task is not None:
        config = config.replace(task=task.name)
    given = config.target
    config = _resolved(config, environ, builtin=task is None)
    from_environment = _from_environment(given, config.target, environ)
    seed, metric = config.search.seed, config.scoring.metric
    task = study_task(config.task, metric, seed) if task is None else _with_metric(metric, task)
    splits = study_splits(config.search, task)
    config, checks = _with_checks(config, task, splits)
    prices = PriceTable(config.budgets.prices)
    _check_prices(config, prices)
    if replay is not None:
        _check_replay(replay, config, task)
        _check_records(replay, splits)
    study_id = replay.study_id if replay is not None else uuid.uuid4().hex[:12]
    journal = _journal_path(config.outputs.journal, task, study_id, replay is not None, journals)
    config = config.replace(journal=str(journal))
    templates = _templates(config.task, task)
    scoring = config.scoring
    _check_demo_search(config)
    custom = scorer or (load_scorer_function(scoring.scorer) if scoring.scorer else None)
    _check_judge(scoring)
    candidates = _candidates(config.task.candidates, config.proposals, replay)
    return Prepared(
        config,
        task,
        splits,
        prices,
        _estimate(config, task, splits, prices, len(candidates)),
        study_id,
        journal,
        replay,
        templates,
        custom,
        candidates,
        from_environment=from_environment,
        checks=checks,
    )


def prepare_resume(
    journal: str | Path,
    *,
    task: Task | None = None,
    scorer: ScorerFunction | None = None,
    **changes: object,
) -> Prepared:
    """A study read back from its journal, with `changes` to the settings that may change
    (budgets, concurrency, limits, endpoints); `task` and `scorer` as `prepare` takes them
    (a study of examples in memory is resumed with the same examples)."""
    replay = replay_journal(journal)
    config = config_of(replay).replace(journal=str(journal), **changes)
    return prepare(config, replay=replay, task=task, scorer=scorer)
