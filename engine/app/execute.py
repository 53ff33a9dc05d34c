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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import msgspec

from engine import __version__
from engine.app.backends import in_process_name, start_backend
from engine.app.endpoints import effective, header_items, remote, role_endpoints
from engine.app.prepare import DEFAULT_STATE_DIR, Prepared, prepare
from engine.app.proposing import build_proposer
from engine.app.scoring import build_scorer
from engine.errors import ConfigError, EngineError, JournalError, setting_value
from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig, load_api_key
from engine.llm.pacing.limiter import RateLimiter
from engine.llm.pool.endpoint_pool import EndpointPool
from engine.llm.probing.preflight import preflight
from engine.search.policy import Policy
from engine.settings import Endpoint, Outputs, Role, StudyConfig
from engine.settings.roles import Api
from engine.study.cache import CACHE_FILE, ResponseCache
from engine.study.events import (
    JOURNAL_VERSION,
    CandidateAdded,
    PoolSizes,
    StudyStarted,
    TaskIdentity,
)
from engine.study.journal import JournalWriteError, JournalWriter, task_fingerprint
from engine.study.locks import journal_lock
from engine.study.observers import Observer
from engine.study.prompting import pick_demos, scoring_demo_count
from engine.study.result import StudyResult
from engine.study.scheduler import study_policy, user_candidates_in
from engine.study.settings import StudySettings, Throughput
from engine.study.shared import StudySetup
from engine.study.study import Study

__all__ = [
    "LimiterFor",
    "cache_path",
    "check_keys",
    "endpoints_json",
    "execute",
    "open_study",
    "run_study",
]

#: Supplies the limiter of each endpoint's client (the service shares one per endpoint among
#: its studies); None, or a None answer, gives the client its own.
LimiterFor = Callable[[EndpointConfig], RateLimiter | None]


def _user_candidates(prepared: Prepared) -> int:
    """The user's own candidates: those still to add, and those the journal holds already."""
    replayed = user_candidates_in(prepared.replay.events) if prepared.replay else 0
    return len(prepared.candidates) + replayed


def _settings(prepared: Prepared) -> StudySettings:
    """The study's settings, counting the user's own candidates in its plan."""
    return prepared.config.study(_user_candidates(prepared))


def _policy(prepared: Prepared) -> Policy:
    rewards = prepared.rewards
    return study_policy(_settings(prepared), n=len(prepared.splits.scoring), rewards=rewards)


def _scoring_format(prepared: Prepared) -> dict[str, Any]:
    """How the target model is asked, for the result: the API, the chat format, the demos."""
    config = prepared.config
    api = config.target.api or "chat"
    count = scoring_demo_count(config.scoring.demos, api)
    demos = pick_demos(prepared.splits.demo, count, config.search.seed)
    return {
        "mode": "custom" if config.scoring.scorer else config.scoring.mode,
        "api": api,
        "chat_format": config.scoring.chat_format if api == "chat" else None,
        "demos": [{"input": d.input, "output": d.outputs[0]} for d in demos],
        **({"checks": msgspec.to_builtins(list(prepared.checks))} if prepared.checks else {}),
    }


def endpoint_config(endpoint: Endpoint, role: Role, throughput: Throughput) -> EndpointConfig:
    """The client's config of one endpoint of a role (`endpoint` decided: see
    `engine.app.endpoints.role_endpoints`; `role` with what it leaves out the target's)."""
    assert endpoint.name is not None and endpoint.model is not None
    where = "headers" if endpoint.name in ("target", "proposal") else f"{endpoint.name}.headers"
    return EndpointConfig(
        name=endpoint.name,
        base_url=endpoint.base_url,
        model=endpoint.model,
        api_key_env=endpoint.api_key_env,
        api_key_file=None if endpoint.api_key_env else endpoint.api_key_file,
        extra_headers=header_items(endpoint.headers or {}, where),
        protocol=role.protocol or "openai",
        requests_per_minute=endpoint.rpm,
        tokens_per_minute=endpoint.tpm,
        concurrency=throughput.concurrency,
        timeout_s=endpoint.timeout_s or role.timeout_s or 120.0,
        transport=throughput.transport,
    )


Caller = LLMClient | EndpointPool


@dataclass(frozen=True, slots=True)
class _Roles:
    """Where each role's calls go: one client, or a pool of several; the judge's client (judge
    scoring); every client; the pools."""

    target: Caller
    proposal: Caller
    judge: LLMClient | None
    clients: tuple[LLMClient, ...]
    pools: tuple[EndpointPool, ...]
    apis: dict[str, Api]  # the API each client's role speaks, by client name


def _judge(config: StudyConfig, base_url: str) -> Endpoint | None:
    """The judge's endpoint (judge scoring only): its own URL, model and key, else the first
    target endpoint's URL and the target's model and key; one client with its own limiter and
    statistics."""
    if config.scoring.mode != "judge":
        return None
    judge = config.judge
    if len(judge.endpoints) > 1:
        raise ConfigError("judge_endpoints: the judge runs on one endpoint; give judge_base_url")
    if not judge.endpoints and judge.base_url is None:  # the first target endpoint's server
        targets = role_endpoints("target", config.target, config.target, base_url) or ()
        judge = msgspec.structs.replace(judge, base_url=targets[0].base_url)
    endpoints = role_endpoints("judge", judge, config.target, base_url, shared=False)
    assert endpoints is not None
    return endpoints[0]


async def _clients(
    stack: AsyncExitStack, prepared: Prepared, base_url: str, limiter_for: LimiterFor | None
) -> _Roles:
    """Each role's clients, opened on `stack` (the proposal role shares the target's when it
    calls the same endpoints with the same model, key, headers and timeout); a role of several
    endpoints is an `EndpointPool` of them."""
    config = prepared.config
    throughput = config.throughput

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

    apis: dict[str, Api] = {}

    async def role(endpoints: tuple[Endpoint, ...], of: Role) -> list[LLMClient]:
        whole = effective(of, config.target)
        for one in endpoints:
            apis[str(one.name)] = whole.api or "chat"
        return [await opened(endpoint_config(one, whole, throughput)) for one in endpoints]

    targets = role_endpoints("target", config.target, config.target, base_url) or ()
    proposals = role_endpoints("proposal", config.proposal, config.target, base_url)
    target_clients = await role(targets, config.target)
    judge_endpoint = _judge(config, base_url)
    judges = () if judge_endpoint is None else tuple(await role((judge_endpoint,), config.judge))
    judge = judges[0] if judges else None
    pools: list[EndpointPool] = []

    def caller(clients: list[LLMClient], name: str, weights: list[float]) -> Caller:
        if len(clients) == 1:
            return clients[0]
        pool = EndpointPool(clients, role=name, weights=weights)
        pools.append(pool)
        return pool

    target = caller(target_clients, "target", [one.weight for one in targets])
    if proposals is None:
        return _Roles(target, target, judge, (*target_clients, *judges), tuple(pools), apis)
    taken = {client.name for client in (*target_clients, *judges)} & {p.name for p in proposals}
    if taken:
        raise ConfigError(f"proposal_endpoints: the name {taken.pop()!r} is taken (target, judge)")
    proposal_clients = await role(proposals, config.proposal)
    proposal = caller(proposal_clients, "proposal", [one.weight for one in proposals])
    clients = (*target_clients, *judges, *proposal_clients)
    return _Roles(target, proposal, judge, clients, tuple(pools), apis)


def check_keys(prepared: Prepared) -> None:
    """Read every key and header value the study's clients will read (a variable, a file), as
    opening them does, and raise the `ConfigError` opening them would: a `--dry-run` refuses
    what the run would, and a run refuses it before starting anything."""
    config = prepared.config
    here = "http://127.0.0.1"  # the in-process server's URL is not known yet, and not needed
    base_url = config.target.base_url or here
    targets = role_endpoints("target", config.target, config.target, base_url) or ()
    roles: list[tuple[tuple[Endpoint, ...], Role]] = [(targets, config.target)]
    proposals = role_endpoints("proposal", config.proposal, config.target, base_url)
    if proposals is not None:
        roles.append((proposals, config.proposal))
    judge = _judge(config, base_url)
    if judge is not None:
        roles.append(((judge,), config.judge))
    for endpoints, role in roles:
        whole = effective(role, config.target)
        for one in endpoints:
            load_api_key(endpoint_config(one, whole, config.throughput))


def where(settings: tuple[Endpoint, ...]) -> str:
    """A role's endpoints as the response cache keys them: one URL, or every URL, sorted (a
    pool's answers are kept apart from those of any one of its servers)."""
    return " ".join(sorted({one.base_url for one in settings}))


def _cache(
    stack: AsyncExitStack, outputs: Outputs, say: Callable[[str], None]
) -> ResponseCache | None:
    if outputs.no_cache:
        return None
    path = cache_path(outputs)
    cache = ResponseCache(path, max_mb=outputs.cache_max_mb, say=say)
    stack.callback(cache.close)
    say(
        f"response cache: {path} (a request made before is answered from it, free; "
        f"{setting_value('no_cache', 'true')} asks the model again)"
    )
    return cache


def cache_path(outputs: Outputs) -> Path:
    """Where the response cache is: the one named, else .ape/cache.sqlite3 here."""
    return Path(outputs.cache) if outputs.cache else DEFAULT_STATE_DIR / CACHE_FILE


def _role_json(settings: tuple[Endpoint, ...]) -> dict[str, Any]:
    first = settings[0]
    role: dict[str, Any] = {
        "model": first.model,
        "base_url": first.base_url,
        "api_key_env": first.api_key_env,
    }
    if len(settings) > 1:
        role["endpoints"] = [
            {
                "name": one.name,
                "base_url": one.base_url,
                "model": one.model,
                "api_key_env": one.api_key_env,
                "weight": one.weight,
            }
            for one in settings
        ]
    return role


def endpoints_json(prepared: Prepared) -> dict[str, Any]:
    """What the study runs on -- the backend, and each role's endpoint(s), model and key
    variable (never a key) -- for the journal header, the result JSON and the report."""
    config = prepared.config
    in_process = in_process_name(config.backend, config.search.seed)
    targets = role_endpoints("target", config.target, config.target, in_process) or ()
    proposals = role_endpoints("proposal", config.proposal, config.target, in_process)
    proposal = _role_json(proposals or targets)
    proposal["model"] = prepared.proposal_model
    return {
        "backend": "endpoint" if remote(config.target) else config.backend.kind,
        "target": _role_json(targets),
        "proposal": proposal,
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
        task=TaskIdentity(task.name, task_fingerprint(task), task.metric, prepared.rewards),
        models=models,
        pools=PoolSizes(len(splits.demo), len(splits.scoring), len(splits.test)),
    )


def _known(prepared: Prepared) -> list[str]:
    """The instructions the proposer must not propose again: those of a resumed study, the
    task's human instruction when it takes part, the user's own candidates."""
    known = [
        event.instruction
        for event in (prepared.replay.events if prepared.replay else ())
        if isinstance(event, CandidateAdded)
    ]
    if prepared.config.proposals.include_human and prepared.task.human_instruction:
        known.append(prepared.task.human_instruction)
    return known + [candidate.instruction for candidate in prepared.candidates]


async def _base_url(stack: AsyncExitStack, prepared: Prepared, say: Callable[[str], None]) -> str:
    """The target's URL: its own, or the in-process server's, started on `stack`."""
    config = prepared.config
    if remote(config.target):
        return config.target.base_url or ""
    start = start_backend(
        prepared.task,
        config.backend,
        model=config.target.model or "",
        seed=config.search.seed,
        concurrency=config.throughput.concurrency,
        say=say,
    )
    return await stack.enter_async_context(start)


async def _setup(
    stack: AsyncExitStack,
    prepared: Prepared,
    say: Callable[[str], None],
    limiter_for: LimiterFor | None,
    cache: ResponseCache | None,
) -> StudySetup:
    config, task = prepared.config, prepared.task
    check_keys(prepared)  # before the in-process server starts: nothing to undo
    base_url = await _base_url(stack, prepared, say)
    roles = await _clients(stack, prepared, base_url, limiter_for)
    for client in roles.clients:  # a wrong URL, key or model fails here, within two seconds
        say((await preflight(client, roles.apis[client.name])).line())
    in_process = in_process_name(config.backend, config.search.seed)
    targets = role_endpoints("target", config.target, config.target, base_url) or ()
    proposals = role_endpoints("proposal", config.proposal, config.target, base_url) or targets
    scorer = await build_scorer(
        config.scoring,
        roles.target,
        api=config.target.api or "chat",
        model=config.target.model or "",
        seed=config.search.seed,
        metric=task.metric,
        templates=prepared.templates,
        custom=prepared.custom_scorer,
        cache=cache,
        endpoint=where(targets) if remote(config.target) else in_process,
        say=say,
        demos=prepared.splits.demo,
        judge=roles.judge,
        checks=prepared.checks,
    )
    proposer = await build_proposer(
        config.proposals,
        roles.proposal,
        prepared.splits.demo,
        api=effective(config.proposal, config.target).api or "chat",
        model=prepared.proposal_model,
        seed=config.search.seed,
        templates=prepared.templates,
        cache=cache,
        endpoint=where(proposals) if remote(config.target) else in_process,
        task=task_fingerprint(task),
        known=_known(prepared),
    )
    return StudySetup(
        settings=_settings(prepared),
        task=task,
        splits=prepared.splits,
        policy=_policy(prepared),
        scorer=scorer,
        proposer=proposer,
        clients=roles.clients,
        pools=roles.pools,
        prices=prepared.prices,
        scoring_model=config.target.model or "",
        user_candidates=prepared.candidates,
        scoring=_scoring_format(prepared),
        scoring_demos=scoring_demo_count(config.scoring.demos, config.target.api or "chat"),
    )


def _hold_journal(stack: AsyncExitStack, prepared: Prepared) -> None:
    """Hold the journal's lock until the study is closed (the one `prepared` carries, or a
    new one, refused at once when another process holds it), and check that the journal is
    as it was read: nobody wrote it in between."""
    if prepared.lock is None or not prepared.lock.held:
        try:
            prepared.journal_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise JournalWriteError(
                f"journal {str(prepared.journal_path)!r}", error, "create its folder"
            ) from None
        lock = journal_lock(prepared.journal_path, f"study {prepared.study_id}").acquire()
        stack.callback(lock.release)
    path = prepared.journal_path
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    expected = prepared.replay.size if prepared.replay is not None else 0
    if size != expected:
        raise JournalError(
            f"journal {str(path)!r}: written by another process since it was read ({expected} "
            f"bytes then, {size} now); read it again: ape-engine resume {path}"
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
        _hold_journal(stack, prepared)
        cache = _cache(stack, prepared.config.outputs, say)
        setup = await _setup(stack, prepared, say, limiter_for, cache)
        journal = JournalWriter(prepared.journal_path)
        stack.callback(journal.close)
        say(
            f"journal: {prepared.journal_path} (resume with: ape-engine resume "
            f"{prepared.journal_path})"
        )
        replay = prepared.replay
        try:
            yield Study(
                setup,
                study_id=prepared.study_id,
                history=replay.events if replay is not None else (),
                observers=[journal, *observers],
                started=_started(prepared) if replay is None else None,
            )
        except JournalWriteError as error:  # a full disk: name every file it stopped
            if error.no_space and cache is not None and cache.out_of_space is not None:
                raise error.naming(
                    f"the response cache {str(cache.path)!r} could not be written either "
                    f"({cache.out_of_space})"
                ) from None
            raise


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
