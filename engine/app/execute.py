"""Wiring a `StudyConfig` to real parts: task, pools, endpoints (or the in-process simulator),
policy, scorer, proposer, response cache and journal; then running the `Study`.

`prepare` does everything that can fail without a call (task file, metric, pools, prices,
journal compatibility) and estimates the spend; `execute` opens the endpoints and runs.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.app.backends import in_process_name, start_backend
from engine.app.estimate import SpendEstimate, estimate_spend
from engine.app.proposing import build_proposer
from engine.app.scoring import build_scorer, load_scorer_function
from engine.errors import ConfigError, JournalError
from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.llm.limiter import RateLimiter
from engine.propose import Templates, load_templates
from engine.search import make_policy
from engine.study.budgets import PriceTable
from engine.study.cache import ResponseCache
from engine.study.config import StudyConfig
from engine.study.events import EventBus
from engine.study.journal import DEFINING_FIELDS, JournalRecorder, Replay, task_fingerprint
from engine.study.parts import StudyParts, UiHook
from engine.study.result import StudyResult
from engine.study.scoring import ScorerFunction
from engine.study.study import Study
from engine.task import BINARY_METRICS, METRICS, Splits, Task, load_task, split_task

__all__ = ["Prepared", "execute", "prepare", "run_study"]

DEFAULT_STATE_DIR = Path(".ape")


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

    @property
    def proposal_model(self) -> str:
        return self.config.proposal_model or self.config.model


def planned_candidates(config: StudyConfig) -> int:
    """How many candidates the study plans: the initial batch, every variant round and the
    human instruction. The scheduler shares delta/2 equally among that many arms, whenever they
    arrive; only arms beyond the plan get the smaller streaming shares."""
    variants = config.variant_rounds * config.variant_leaders * config.variants_per_leader
    planned = config.initial_candidates + variants + int(config.include_human)
    return max(1, min(planned, config.max_candidates))


def _reward_kind(config: StudyConfig, task: Task) -> str:
    """The scheduler's reward kind: binary when every reward is right or wrong (execution
    accuracy with a 0/1 metric, no custom scorer), continuous otherwise (log-probability, F1,
    a custom scorer)."""
    binary = config.scoring == "exec" and not config.scorer and task.metric in BINARY_METRICS
    return "binary" if binary else "continuous"


def _splits(config: StudyConfig, task: Task) -> Splits:
    sizes: dict[str, int] = {}
    for name in ("demo_size", "scoring_size", "test_size"):
        value = getattr(config, name)
        if value is not None:
            sizes[name] = value
    return split_task(task, seed=config.seed, **sizes)


def prepare(config: StudyConfig, *, replay: Replay | None = None) -> Prepared:
    """Load and check everything a study needs before its first call."""
    if not config.task:
        raise ConfigError("task: give a built-in task name or a task file (--task NAME|PATH)")
    task = load_task(config.task, seed=config.seed, format=config.task_format)
    if config.metric is not None:
        if config.metric not in METRICS:
            raise ConfigError(
                f"metric: unknown metric {config.metric!r}; choose one of {', '.join(METRICS)}"
            )
        task = dataclasses.replace(task, metric=config.metric)
    splits = _splits(config, task)
    prices = PriceTable(config.prices)
    proposal_model = config.proposal_model or config.model
    if config.budget_usd is not None:
        for model in {config.model, proposal_model}:
            if model not in prices:
                raise ConfigError(
                    f"budget_usd: model {model!r} has no price; add it to the config file as "
                    f'[prices."{model}"] input = ... output = ... (USD per million tokens)'
                )
    if replay is not None:
        if replay.fingerprint != task_fingerprint(task):
            raise JournalError(
                f"journal of study {replay.study_id}: it was made on task {replay.task_name!r} "
                f"with other examples (fingerprint {replay.fingerprint}, this task is "
                f"{task_fingerprint(task)}); resume it with the task it was started on"
            )
        for name in DEFINING_FIELDS:
            if getattr(replay.config, name) != getattr(config, name):
                raise JournalError(
                    f"journal of study {replay.study_id}: {name} was "
                    f"{getattr(replay.config, name)!r}, not {getattr(config, name)!r}; a "
                    "journal resumes only with the settings that define its study"
                )
    study_id = replay.study_id if replay is not None else uuid.uuid4().hex[:12]
    journal = (
        Path(config.journal)
        if config.journal
        else (DEFAULT_STATE_DIR / "journals" / f"{task.name}-{study_id}.jsonl")
    )
    if replay is None and journal.exists() and journal.stat().st_size > 0:
        raise JournalError(
            f"journal: {journal} already holds a study; continue it with 'ape-engine resume "
            f"{journal}', or give another --journal path (or none: a new file per study)"
        )
    estimate = estimate_spend(
        config,
        splits,
        human=bool(task.human_instruction),
        prices=prices,
        scoring_model=config.model,
        proposal_model=proposal_model,
    )
    templates = load_templates(config.templates)
    custom = load_scorer_function(config.scorer) if config.scorer else None
    return Prepared(
        config, task, splits, prices, estimate, study_id, journal, replay, templates, custom
    )


def _endpoint(
    name: str, base_url: str, model: str, api_key_env: str | None, config: StudyConfig
) -> EndpointConfig:
    return EndpointConfig(
        name=name,
        base_url=base_url,
        model=model,
        api_key_env=api_key_env,
        requests_per_minute=config.rpm,
        tokens_per_minute=config.tpm,
        concurrency=config.concurrency,
        transport=config.transport,
    )


async def execute(
    prepared: Prepared,
    *,
    ui: UiHook | None = None,
    events: EventBus | None = None,
    say: Callable[[str], None] = print,
    limiter_for: Callable[[EndpointConfig], RateLimiter | None] | None = None,
) -> StudyResult:
    """Open the endpoints (starting the simulator when no base URL is given) and run.

    `limiter_for` may supply the limiter of each endpoint's client (the service shares one per
    endpoint among its studies); None, or a None answer, gives the client its own."""
    config = prepared.config

    def client(endpoint: EndpointConfig) -> LLMClient:
        return LLMClient(endpoint, limiter=limiter_for(endpoint) if limiter_for else None)

    async with AsyncExitStack() as stack:
        base_url = config.base_url
        if base_url is None:
            base_url = await stack.enter_async_context(start_backend(prepared.task, config, say))
        target = await stack.enter_async_context(
            client(_endpoint("target", base_url, config.model, config.api_key_env, config))
        )
        clients = [target]
        proposal_url = config.proposal_base_url or base_url
        proposal_model = prepared.proposal_model
        if proposal_url != base_url or proposal_model != config.model:
            proposal_client = await stack.enter_async_context(
                client(
                    _endpoint(
                        "proposal",
                        proposal_url,
                        proposal_model,
                        config.proposal_api_key_env or config.api_key_env,
                        config,
                    )
                )
            )
            clients.append(proposal_client)
        else:
            proposal_client = target
        task, splits = prepared.task, prepared.splits
        policy = make_policy(
            config.policy,
            n=len(splits.scoring),
            seed=config.seed,
            delta=config.delta,
            epsilon=config.epsilon,
            initial_arms=planned_candidates(config),
            rewards=_reward_kind(config, task),
        )
        cache: ResponseCache | None = None
        if not config.no_cache:
            cache_path = Path(config.cache) if config.cache else DEFAULT_STATE_DIR / "cache.jsonl"
            cache = ResponseCache(cache_path)
            stack.callback(cache.close)
        where = base_url if config.base_url else in_process_name(config)
        scorer = await build_scorer(
            config,
            target,
            metric=task.metric,
            templates=prepared.templates,
            custom=prepared.custom_scorer,
            cache=cache,
            endpoint=where,
            say=say,
        )
        known = [arm.instruction for arm in prepared.replay.state.arms] if prepared.replay else []
        if config.include_human and task.human_instruction:
            known.append(task.human_instruction)
        proposer = await build_proposer(
            config,
            proposal_client,
            splits.demo,
            templates=prepared.templates,
            cache=cache,
            endpoint=proposal_url if config.base_url else where,
            task=task_fingerprint(task),
            known=known,
        )
        recorder = JournalRecorder(prepared.journal_path)
        stack.callback(recorder.close)
        if prepared.replay is None:
            models: dict[str, Any] = {
                "target": {"model": config.model, "base_url": config.base_url or "simulator"},
                "proposal": {"model": proposal_model, "base_url": config.proposal_base_url},
            }
            recorder.header(study_id=prepared.study_id, config=config, task=task, models=models)
        else:
            recorder.resumed()
        say(
            f"journal: {prepared.journal_path} (resume with: ape-engine resume {prepared.journal_path})"
        )
        parts = StudyParts(
            task=task,
            splits=splits,
            policy=policy,
            scorer=scorer,
            proposer=proposer,
            scoring_model=config.model,
            recorder=recorder,
            clients=tuple(clients),
            prices=prepared.prices,
            restored=prepared.replay.state if prepared.replay else None,
        )
        study = Study(config, parts, events=events, ui=ui, study_id=prepared.study_id)
        return await study.run()


async def run_study(config: StudyConfig, *, ui: UiHook | None = None) -> StudyResult:
    """Prepare and run a study from its config (the programmatic entry)."""
    return await execute(prepare(config), ui=ui, say=lambda _: None)
