"""A prepared study becomes a running one: its endpoints (or the in-process simulator or local
model), policy, scorer, proposer, response cache and journal, then the `Study` over them.

`open_study` is an async context manager that yields the study ready to `run()` (the live UI
and the service hold it while it runs, and let go of everything when the block ends);
`execute` runs it to its result; `run_study` does both from a config.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from engine import __version__
from engine.app.backends import in_process_name, start_backend
from engine.app.endpoints import header_items
from engine.app.prepare import DEFAULT_STATE_DIR, Prepared, prepare
from engine.app.proposing import build_proposer
from engine.app.scoring import build_scorer
from engine.errors import EngineError
from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.llm.limiter import RateLimiter
from engine.llm.preflight import preflight
from engine.search.policy import Policy
from engine.study.cache import CACHE_FILE, ResponseCache
from engine.study.config import StudyConfig
from engine.study.events import (
    JOURNAL_VERSION,
    CandidateAdded,
    PoolSizes,
    StudyStarted,
    TaskIdentity,
)
from engine.study.journal import JournalWriter, task_fingerprint
from engine.study.observers import Observer
from engine.study.prompting import pick_demos, scoring_demo_count
from engine.study.result import StudyResult
from engine.study.scheduler import study_policy, study_settings, user_candidates_in
from engine.study.settings import StudySettings
from engine.study.shared import StudySetup
from engine.study.study import Study

__all__ = ["LimiterFor", "endpoints_json", "execute", "open_study", "run_study"]

#: Supplies the limiter of each endpoint's client (the service shares one per endpoint among
#: its studies); None, or a None answer, gives the client its own.
LimiterFor = Callable[[EndpointConfig], RateLimiter | None]


def _user_candidates(prepared: Prepared) -> int:
    """The user's own candidates: those still to add, and those the journal holds already."""
    replayed = user_candidates_in(prepared.replay.events) if prepared.replay else 0
    return len(prepared.candidates) + replayed


def _policy(prepared: Prepared) -> Policy:
    return study_policy(
        prepared.config,
        n=len(prepared.splits.scoring),
        metric=prepared.task.metric,
        user_candidates=_user_candidates(prepared),
    )


def _settings(prepared: Prepared) -> StudySettings:
    """The study's settings, counting the user's own candidates in its plan."""
    return study_settings(prepared.config, _user_candidates(prepared))


def _scoring_format(prepared: Prepared) -> dict[str, Any]:
    """How the target model is asked, for the result: the API, the chat format, the demos."""
    config = prepared.config
    count = scoring_demo_count(config.scoring_demos, config.api)
    demos = pick_demos(prepared.splits.demo, count, config.seed)
    return {
        "mode": "custom" if config.scorer else config.scoring,
        "api": config.api,
        "chat_format": config.chat_format if config.api == "chat" else None,
        "demos": [{"input": d.input, "output": d.outputs[0]} for d in demos],
    }


def endpoint_config(
    name: str,
    base_url: str,
    model: str,
    api_key_env: str | None,
    config: StudyConfig,
    *,
    api_key_file: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    timeout_s: float | None = None,
) -> EndpointConfig:
    return EndpointConfig(
        name=name,
        base_url=base_url,
        model=model,
        api_key_env=api_key_env,
        api_key_file=None if api_key_env else api_key_file,
        extra_headers=headers,
        protocol=config.protocol,
        requests_per_minute=config.rpm,
        tokens_per_minute=config.tpm,
        concurrency=config.concurrency,
        timeout_s=timeout_s if timeout_s is not None else config.timeout_s,
        transport=config.transport,
    )


def _shared_by_both_roles(prepared: Prepared, same_url: bool) -> bool:
    """Do proposals go to the target's client (same URL, model, key, headers and timeout)?"""
    config = prepared.config
    own_key = config.proposal_api_key_env or config.proposal_api_key_file
    return (
        same_url
        and prepared.proposal_model == config.model
        and config.proposal_timeout_s in (None, config.timeout_s)
        and (own_key is None or own_key in (config.api_key_env, config.api_key_file))
        and config.proposal_headers in (None, config.headers)
    )


async def _clients(
    stack: AsyncExitStack, prepared: Prepared, base_url: str, limiter_for: LimiterFor | None
) -> tuple[LLMClient, LLMClient, list[LLMClient]]:
    """(target, proposal, all) clients, opened on `stack`; one client when both roles use
    the same endpoint and model."""
    config = prepared.config

    async def opened(endpoint: EndpointConfig) -> LLMClient:
        limiter = limiter_for(endpoint) if limiter_for else None
        if limiter is None:  # no cap of its own: the study's concurrency is its capacity limiter
            limiter = RateLimiter(
                requests_per_minute=endpoint.requests_per_minute,
                tokens_per_minute=endpoint.tokens_per_minute,
                burst_s=endpoint.burst_s,
                adaptive=endpoint.adaptive,
            )
        return await stack.enter_async_context(LLMClient(endpoint, limiter=limiter))

    headers = header_items(config.headers, "headers")
    target = await opened(
        endpoint_config(
            "target",
            base_url,
            config.model,
            config.api_key_env,
            config,
            api_key_file=config.api_key_file,
            headers=headers,
        )
    )
    clients = [target]
    if config.scoring == "judge":  # a client of its own: its own limiter and statistics
        judge_url = config.judge_base_url or base_url
        judge_key = config.judge_api_key_env or config.api_key_env
        judge_model = config.judge_model or config.model
        clients.append(
            await opened(endpoint_config("judge", judge_url, judge_model, judge_key, config))
        )
    proposal_url = config.proposal_base_url or base_url
    if _shared_by_both_roles(prepared, proposal_url == base_url):
        return target, target, clients
    own_key = config.proposal_api_key_env or config.proposal_api_key_file
    # the proposal role takes the target's key and headers unless it has its own
    if config.proposal_headers is not None:
        headers = header_items(config.proposal_headers, "proposal_headers")
    proposal = await opened(
        endpoint_config(
            "proposal",
            proposal_url,
            prepared.proposal_model,
            config.proposal_api_key_env if own_key else config.api_key_env,
            config,
            api_key_file=config.proposal_api_key_file if own_key else config.api_key_file,
            headers=headers,
            timeout_s=config.proposal_timeout_s,
        )
    )
    return target, proposal, [*clients, proposal]


def _cache(
    stack: AsyncExitStack, config: StudyConfig, say: Callable[[str], None]
) -> ResponseCache | None:
    if config.no_cache:
        return None
    path = Path(config.cache) if config.cache else DEFAULT_STATE_DIR / CACHE_FILE
    cache = ResponseCache(path, max_mb=config.cache_max_mb, say=say)
    stack.callback(cache.close)
    return cache


def endpoints_json(prepared: Prepared) -> dict[str, Any]:
    """What the study runs on -- the backend, and each role's endpoint, model and key variable
    (never a key) -- for the journal header, the result JSON and the report."""
    config = prepared.config
    target_url = config.base_url or in_process_name(config)
    return {
        "backend": "endpoint" if config.base_url else config.backend,
        "target": {
            "model": config.model,
            "base_url": target_url,
            "api_key_env": config.api_key_env,
        },
        "proposal": {
            "model": prepared.proposal_model,
            "base_url": config.proposal_base_url or target_url,
            "api_key_env": config.proposal_api_key_env or config.api_key_env,
        },
    }


def _started(prepared: Prepared) -> StudyStarted:
    config = prepared.config
    models = endpoints_json(prepared)
    task, splits = prepared.task, prepared.splits
    return StudyStarted(
        version=JOURNAL_VERSION,
        study_id=prepared.study_id,
        engine=__version__,
        created=time.time(),
        config=config.to_json(),
        task=TaskIdentity(task.name, task_fingerprint(task), task.metric),
        models=models,
        pools=PoolSizes(len(splits.demo), len(splits.scoring), len(splits.test)),
    )


async def _setup(
    stack: AsyncExitStack,
    prepared: Prepared,
    say: Callable[[str], None],
    limiter_for: LimiterFor | None,
) -> StudySetup:
    config, task = prepared.config, prepared.task
    base_url = config.base_url
    if base_url is None:
        base_url = await stack.enter_async_context(start_backend(task, config, say))
    target, proposal, clients = await _clients(stack, prepared, base_url, limiter_for)
    for client in clients:  # a wrong URL, key or model fails here, within two seconds
        say((await preflight(client, config.api)).line())
    cache = _cache(stack, config, say)
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
        demos=prepared.splits.demo,
        judge=next((c for c in clients if c.name == "judge"), None),
    )
    known = [
        event.instruction
        for event in (prepared.replay.events if prepared.replay else ())
        if isinstance(event, CandidateAdded)
    ]
    if config.include_human and task.human_instruction:
        known.append(task.human_instruction)
    known += [candidate.instruction for candidate in prepared.candidates]
    proposer = await build_proposer(
        config,
        proposal,
        prepared.splits.demo,
        templates=prepared.templates,
        cache=cache,
        endpoint=(config.proposal_base_url or base_url) if config.base_url else where,
        task=task_fingerprint(task),
        known=known,
    )
    return StudySetup(
        settings=_settings(prepared),
        task=task,
        splits=prepared.splits,
        policy=_policy(prepared),
        scorer=scorer,
        proposer=proposer,
        clients=tuple(clients),
        prices=prepared.prices,
        scoring_model=config.model,
        user_candidates=prepared.candidates,
        scoring=_scoring_format(prepared),
    )


@asynccontextmanager
async def open_study(
    prepared: Prepared,
    *,
    observers: Iterable[Observer] = (),
    say: Callable[[str], None] = print,
    limiter_for: LimiterFor | None = None,
) -> AsyncIterator[Study]:
    """The study of `prepared`, its endpoints open and its journal the first observer; all of
    it is closed when the block ends."""
    async with AsyncExitStack() as stack:
        setup = await _setup(stack, prepared, say, limiter_for)
        journal = JournalWriter(prepared.journal_path)
        stack.callback(journal.close)
        say(
            f"journal: {prepared.journal_path} (resume with: ape-engine resume "
            f"{prepared.journal_path})"
        )
        replay = prepared.replay
        yield Study(
            setup,
            study_id=prepared.study_id,
            history=replay.events if replay is not None else (),
            observers=[journal, *observers],
            started=_started(prepared) if replay is None else None,
        )


async def execute(
    prepared: Prepared,
    *,
    observers: Iterable[Observer] = (),
    say: Callable[[str], None] = print,
    limiter_for: LimiterFor | None = None,
    watch: Callable[[Study], Coroutine[Any, Any, None]] | None = None,
) -> StudyResult:
    """Run the study of `prepared` to its result; `watch(study)`, when given, runs beside it
    (a display that pulls snapshots until one says the study is done). A study that stops on
    an `EngineError` (its journal could not be written) raises it as it is, not in a group."""
    async with open_study(prepared, observers=observers, say=say, limiter_for=limiter_for) as study:
        if watch is None:
            return await study.run()
        failure: EngineError | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(watch, study)
            try:
                result = await study.run()
            except EngineError as error:
                failure = error
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return result


async def run_study(config: StudyConfig) -> StudyResult:
    """Prepare and run a study from its config (the programmatic entry)."""
    return await execute(prepare(config), say=lambda _: None)
