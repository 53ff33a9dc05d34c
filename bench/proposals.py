"""Where the proposal calls go, measured on real models: for each task, one study per proposal
strategy with the same budget -- the paper's resampling of the leaders (``resample``) and, where
the engine offers them, reflective variants (``reflect``, ``both``) -- against the task's human
instruction, and DSPy's GEPA beside them (bench/gepa_peer.py).

Qwen2.5-Coder-1.5B-Instruct proposes and Qwen2.5-Coder-0.5B-Instruct is the target (GGUF Q4_K_M
from bench/models.py), each served by ``ape-engine local --threads 1`` in its own process; the
chat API (the default), execution accuracy. Every study of a task draws the same pools (seed),
so each strategy's pick and the human instruction are scored on the same held-out test
examples (instruction induction: 50 of the task's execute file). Each strategy has a response
cache of its own (a resumed study finds its answers): a cache shared between strategies would
answer a later strategy's scoring calls at once, spending its budget before the variant round's
proposals come back.

The strategies differ only in their variant round, so by default (``--start shared``) every
strategy of a task and seed starts from the same initial candidates, given to it as the user's
own: those the ``resample`` study with its own start proposed (that study runs first when the
ledger lacks it, and is reported in a table of its own). With ``--start own`` each study
proposes its own initial candidates, as a user's study does; the proposer samples at
temperature 1, so two such studies share no initial candidate, and most picks come from the
initial round: their difference is mostly which candidates the initial round drew.
``--system TEXT`` runs the engine's studies with another output-only system message (the
same initial candidates: they are proposed without it), in tables of their own. A study's
identity names its system message unless it is the engine's first one
(`FIRST_SCORING_SYSTEM`), so rows written before the default changed keep their keys. The
studies use the engine's default scheduler policy (``--policy`` another); the identity names
the policy unless it is ``lucb``, which every row had until 2026-12-08. GEPA searches with
DSPy's own prompts, so a GEPA row under another system message takes the search of a finished
row of the same task, seed and budget and scores its pick and the human instruction again
(``search_from`` names that row).

    nice -n 10 .venv/bin/python bench/proposals.py                     # zero-shot, 24 tasks
    nice -n 10 .venv/bin/python bench/proposals.py --start own         # each its own start
    nice -n 10 .venv/bin/python bench/proposals.py --scoring-demos default --tasks-set eight
    nice -n 10 .venv/bin/python bench/proposals.py --tasks-set eight --strategies engine gepa
    nice -n 10 .venv/bin/python bench/proposals.py --system "Reply with just the output."
    .venv/bin/python bench/proposals.py --report                       # the tables so far
    nice -n 10 .venv/bin/python bench/proposals.py --suite bigbench    # the final check only

Each finished study is one line of bench/results/proposals.jsonl, written as it finishes; a run
skips the studies already there, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
from models import MODELS, ensure
from proposal_report import UNNAMED_POLICY, Ledger, report, study_key
from real_model import DEFAULT_TASKS

import engine
from engine.app import StudyConfig, execute, prepare
from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.propose import Templates
from engine.propose.templates import FIRST_SCORING_SYSTEM
from engine.settings import SETTINGS
from engine.study.events import CandidateAdded
from engine.study.intervals import mean_interval
from engine.study.journal import read_events
from engine.study.prompting import ScoringPrompt, pick_demos, scoring_demo_count
from engine.study.scoring import ClientScorer
from engine.task import load_task, split_task

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
LEDGER = RESULTS / "proposals.jsonl"
#: each strategy's response cache: a resumed study finds its answers, another strategy does not
CACHE = RESULTS / "proposals-cache-{strategy}.sqlite3"
WORK = RESULTS / "proposals-work"
#: the initial candidates every strategy of a task and seed starts from (``--start shared``)
POOLS = WORK / "pools"
SHARED = ROOT.parent.parent / "shared" / "data"
SUITES = {"ii": SHARED / "instruction_induction" / "induce", "bigbench": SHARED / "bigbench_ii"}
#: the eight tasks of bench/real_model.py: the demo-turn runs and the GEPA peer
EIGHT = DEFAULT_TASKS
DSPY_PYTHON = ROOT / ".venv-dspy" / "bin" / "python"


@dataclass(frozen=True, slots=True)
class Budget:
    """One study's budget, the same for every strategy (and the GEPA peer's target calls)."""

    initial_candidates: int = 12
    variant_rounds: int = 1
    scoring_size: int = 40
    test_size: int = 50
    scoring_calls: int = 200
    concurrency: int = 8


def strategies() -> tuple[str, ...]:
    """The proposal strategies this engine offers: ``resample`` always; ``reflect`` and
    ``both`` when its settings have the `variants` choice."""
    if "variants" in {one.flat for one in SETTINGS}:
        return ("resample", "reflect", "both")
    return ("resample",)


def task_files(suite: str, names: list[str] | None) -> list[tuple[str, Path]]:
    """(name, file) of each task of `suite`, all of them or those `names` says."""
    folder = SUITES[suite]
    if suite == "ii":
        found = {path.stem: path for path in sorted(folder.glob("*.json"))}
    else:
        found = {path.parent.name: path for path in sorted(folder.glob("*/task.json"))}
    if not found:
        raise SystemExit(f"no {suite} tasks found under {folder}")
    unknown = sorted(set(names or ()) - set(found))
    if unknown:
        raise SystemExit(f"unknown {suite} task(s): {', '.join(unknown)}")
    return [(name, found[name]) for name in (names or sorted(found))]


def engine_commit() -> str:
    """The commit of the engine this run imports, with ``+dirty`` when its tracked files differ
    from it; for an engine outside a git checkout (another branch's files, exported to run
    beside this one), what ``$APE_BENCH_ENGINE_COMMIT`` says."""
    here = str(Path(engine.__file__).resolve().parent.parent)
    if not (Path(here) / ".git").exists():
        return os.environ.get("APE_BENCH_ENGINE_COMMIT", f"unknown ({here})")
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# -- the two local servers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    model: str  # the name it answers to
    file: str


_LISTENING = re.compile(r"listening on (http://\S+/v1)")


@contextlib.contextmanager
def local_server(path: Path, threads: int, context: int, port: int, log: Path) -> Iterator[Server]:
    """`ape-engine local` serving `path` in its own process (so that the GEPA peer, in another
    environment, calls the same server), stopped when the block ends."""
    command = [str(Path(sys.executable).with_name("ape-engine")), "local", "--model", str(path),
               "--threads", str(threads), "--port", str(port), "--context", str(context)]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = _LISTENING.search(line)
        if found is None:
            raise SystemExit(f"ape-engine local {path.name} did not start ({log}): {line!r}")
        yield Server(found.group(1), path.stem, path.name)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def bench_servers(threads: int, ports: list[int]) -> Iterator[tuple[Server, Server]]:
    """(target, proposer): the 0.5B and the 1.5B model, fetched or checked first. The ports are
    fixed because the response cache keys each answer by its endpoint's URL: on the same ports,
    a resumed run and a later strategy find the answers of earlier runs."""
    target_path, proposer_path = ensure("0.5b"), ensure("1.5b")
    log = WORK / "servers.log"
    with (
        local_server(target_path, threads, 2048, ports[0], log) as target,
        local_server(proposer_path, threads, 4096, ports[1], log) as proposer,
    ):
        yield target, proposer


# -- one engine study ---------------------------------------------------------------------------


def _tag(options: dict[str, Any] | None) -> str:
    return (
        "-".join(f"{key}={value}" for key, value in sorted((options or {}).items())) or "defaults"
    )


def parse_options(pairs: list[str]) -> dict[str, Any] | None:
    """``--set KEY=VALUE`` pairs: more settings of the engine's studies (a JSON value, or
    text), part of each study's identity; None when there are none."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in {one.flat for one in SETTINGS}:
            raise SystemExit(f"--set {pair}: give KEY=VALUE with a setting of StudyConfig")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options or None


def system_tag(system: str | None) -> str:
    """A file-name part for another output-only system message ('' for the engine's own)."""
    if system is None:
        return ""
    return "-s" + hashlib.sha256(system.encode()).hexdigest()[:8]


def templates_file(system: str) -> Path:
    """A templates file giving the output-only system message `system` (written once)."""
    path = WORK / "templates" / f"system{system_tag(system)}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"scoring_system": system}) + "\n")
    return path


def study_config(
    task: Path, strategy: str, demos: int | None, seed: int, budget: Budget,
    servers: tuple[Server, Server], journal: Path, options: dict[str, Any] | None = None,
    pool: Path | None = None, system: str | None = None, policy: str = UNNAMED_POLICY,
) -> StudyConfig:  # fmt: skip
    """The study's settings; with a `pool`, it starts from those candidates (the user's own)
    and proposes no initial round of its own; with a `system`, the output-only system message
    is that one."""
    target, proposer = servers
    variants: dict[str, Any] = {"variants": strategy} if len(strategies()) > 1 else {}
    variants.update(options or {})
    if pool is not None:
        variants["candidates"] = str(pool)
    if system is not None:
        variants["templates"] = str(templates_file(system))
    cache = str(CACHE).format(strategy=strategy + ("-shared" if pool is not None else ""))
    return StudyConfig.of(
        task=str(task),
        model=target.model,
        base_url=target.url,
        proposal_model=proposer.model,
        proposal_base_url=proposer.url,
        api="chat",
        scoring="exec",
        policy=policy,
        scoring_demos=demos,
        seed=seed,
        initial_candidates=0 if pool is not None else budget.initial_candidates,
        variant_rounds=budget.variant_rounds,
        scoring_size=budget.scoring_size,
        test_size=budget.test_size,
        budget_scoring_calls=budget.scoring_calls,
        concurrency=budget.concurrency,
        timeout_s=900.0,  # one thread per model: a call may wait behind several others
        cache=cache,
        journal=str(journal),
        **variants,
    )


def _evaluation(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"instruction": value.instruction, "score": value.test_score,
            "ci": list(value.test_ci), "n": value.n, "failed": value.failed}  # fmt: skip


def journal_path(
    name: str, strategy: str, demos: int | None, seed: int, options: dict[str, Any] | None,
    shared: bool = False, system: str | None = None, policy: str = UNNAMED_POLICY,
) -> Path:  # fmt: skip
    start = ("-shared" if shared else "") + system_tag(system)
    start += "" if policy == UNNAMED_POLICY else f"-{policy}"
    return WORK / "journals" / f"{name}-{strategy}-{demos}-{seed}-{_tag(options)}{start}.jsonl"


def initial_pool(journal: Path) -> list[str]:
    """The instructions a finished study proposed in its initial round, in the order they came
    (its journal's `candidate_added` events of origin ``initial``, read by the engine's own
    reader: a damaged line is named by its number)."""
    pool = [
        event.instruction
        for event in read_events(journal)
        if isinstance(event, CandidateAdded) and event.origin == "initial"
    ]
    if not pool:
        raise SystemExit(f"{journal}: no initial candidate in it")
    return pool


def write_pool(path: Path, pool: list[str]) -> None:
    """`pool` as a candidates file (JSON Lines: an instruction may hold a line break)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps({"instruction": one}) + "\n" for one in pool)
    part = path.with_suffix(".part")
    part.write_text(text)
    part.replace(path)


async def engine_study(
    name: str, task: Path, strategy: str, demos: int | None, seed: int, budget: Budget,
    servers: tuple[Server, Server], options: dict[str, Any] | None, pool: Path | None = None,
    system: str | None = None, system_key: str | None = None, policy: str = UNNAMED_POLICY,
) -> dict[str, Any]:  # fmt: skip
    """One study to its end; its pick, the human instruction and the runner-up on the test
    examples, and what it spent. With a `pool`, it starts from those candidates; with a
    `system`, that output-only system message (`system_key`: its name in the file names)."""
    journal = journal_path(name, strategy, demos, seed, options, pool is not None, system_key,
                           policy)  # fmt: skip
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.unlink(missing_ok=True)  # an interrupted study starts again (its calls are cached)
    config = study_config(task, strategy, demos, seed, budget, servers, journal, options, pool,
                          system, policy)  # fmt: skip
    began = time.perf_counter()
    result = await execute(prepare(config), say=lambda _: None)
    if not result.ok or result.winner is None or result.human is None:
        raise RuntimeError(
            f"{name} {strategy}: no winner and human baseline ({result.status}: "
            f"{result.error or result.reason})"
        )
    origins: dict[str, int] = {}
    for candidate in result.candidates:
        origins[candidate.origin] = origins.get(candidate.origin, 0) + 1
    picked = next(c for c in result.candidates if c.arm == result.winner_arm)
    return {
        "pick": {**(_evaluation(result.winner) or {}), "origin": picked.origin},
        "human": _evaluation(result.human),
        "runner_up": _evaluation(result.runner_up),
        "spend": result.spend.to_json(),
        "candidates": origins,
        "reason": result.reason,
        "seconds": time.perf_counter() - began,
    }


# -- the GEPA peer ------------------------------------------------------------------------------


async def score_on_test(
    task: Path, instruction: str, demos: int | None, seed: int, budget: Budget, target: Server,
    system: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """`instruction` on the study's test examples, asked and scored as the engine's final
    evaluation asks and scores (`ClientScorer`, the same demos, chat format, system message
    (`system`; None: the engine's) and metric)."""
    loaded = load_task(str(task), seed=seed)
    splits = split_task(
        loaded, seed=seed, scoring_size=budget.scoring_size, test_size=budget.test_size
    )
    shown = pick_demos(splits.demo, scoring_demo_count(demos, "chat"), seed)
    templates = Templates() if system is None else Templates(scoring_system=system)
    asking = ScoringPrompt(templates, shown, "output-only")
    endpoint = EndpointConfig(name="target", base_url=target.url, model=target.model,
                              concurrency=budget.concurrency, timeout_s=900.0)  # fmt: skip
    async with LLMClient(endpoint) as client:
        scorer = ClientScorer(client, metric=loaded.metric, asking=asking)
        rewards: list[float] = []

        async def one(index: int) -> None:
            rewards.append((await scorer.score(instruction, splits.test[index])).reward)

        async with anyio.create_task_group() as group:
            for index in range(len(splits.test)):
                group.start_soon(one, index)
    mean, ci = mean_interval(rewards)
    return {"instruction": instruction, "score": mean, "ci": list(ci), "n": len(rewards)}


def gepa_budget(ledger: Ledger, key_base: dict[str, Any], fallback: int) -> int:
    """GEPA's target calls: the most any engine strategy spent on the task's search."""
    spent = [
        record["spend"]["scoring_calls"]
        for record in ledger.records()
        if record["strategy"] != "gepa"
        and all(record.get(k) == v for k, v in key_base.items() if k != "strategy")
    ]
    return max(spent, default=fallback)


def gepa_lender(ledger: Ledger, base: dict[str, Any], calls: int) -> dict[str, Any] | None:
    """A finished GEPA row whose search this study can take: the same task, seed, demos,
    pools and call budget under another system message (GEPA searches with DSPy's own
    prompts, so only the test scores depend on the system message)."""
    same = ("suite", "task", "scoring_demos", "seed", "budget")
    found = [
        record
        for record in ledger.records()
        if record["strategy"] == "gepa"
        and "peer" in record
        and all(record.get(k) == base.get(k) for k in same)
        and record["spend"].get("budget") == calls
    ]
    return found[-1] if found else None


async def gepa_study(
    name: str, task: Path, demos: int | None, seed: int, budget: Budget, calls: int,
    servers: tuple[Server, Server], system: str | None = None,
    lender: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """GEPA (bench/gepa_peer.py, in the DSPy environment) on the task's pools with `calls`
    target calls, then its pick and the human instruction on the test examples, asked as the
    engine asks (with `system`, that system message). With a `lender` (`gepa_lender`), its
    search is taken and only the test scores are new."""
    target, proposer = servers
    began = time.perf_counter()
    if lender is None:
        peer = await _gepa_search(name, task, demos, seed, budget, calls, target, proposer)
        spend = {"scoring_calls": peer["target_calls"], "proposal_calls": peer["reflection_calls"],
                 "metric_calls": peer["metric_calls"], "budget": calls}  # fmt: skip
        lent: dict[str, Any] = {}
    else:
        peer, spend = lender["peer"], lender["spend"]
        lent = {"search_from": lender.get("finished")}
    pick = await score_on_test(task, peer["instruction"], demos, seed, budget, target, system)
    human = await score_on_test(task, peer["human"], demos, seed, budget, target, system)
    return {"pick": pick, "human": human, "runner_up": None, "spend": spend,
            "candidates": {"gepa": peer["candidates"]}, "reason": peer["reason"],
            "peer": peer, **lent, "seconds": time.perf_counter() - began}  # fmt: skip


async def _gepa_search(
    name: str, task: Path, demos: int | None, seed: int, budget: Budget, calls: int,
    target: Server, proposer: Server,
) -> dict[str, Any]:  # fmt: skip
    """bench/gepa_peer.py's run in the DSPy environment: what it wrote (its pick and spend)."""
    if not DSPY_PYTHON.is_file():
        raise SystemExit(f"no DSPy environment at {DSPY_PYTHON.parent.parent}: make bench-dspy")
    out = WORK / "gepa" / f"{name}-{demos}-{seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [str(DSPY_PYTHON), str(ROOT / "gepa_peer.py"), "--task", str(task),
               "--seed", str(seed), "--scoring-size", str(budget.scoring_size),
               "--test-size", str(budget.test_size), "--max-metric-calls", str(calls),
               "--target-url", target.url, "--target-model", target.model,
               "--reflection-url", proposer.url, "--reflection-model", proposer.model,
               "--out", str(out)]  # fmt: skip
    if demos is not None:
        command += ["--scoring-demos", str(demos)]
    with (WORK / "gepa" / f"{name}-{demos}-{seed}.log").open("w") as log:
        async with await anyio.open_process(command, stdout=log, stderr=log) as process:
            try:
                code = await process.wait()
            except BaseException:  # a stopped run stops the peer too (it would be waited for)
                process.kill()
                raise
    if code != 0:
        raise subprocess.CalledProcessError(code, command)
    peer: dict[str, Any] = json.loads(out.read_text())
    return peer


# -- the run ------------------------------------------------------------------------------------


def _plan(args: argparse.Namespace) -> list[tuple[str, Path, str, int]]:
    """(task, file, strategy, seed) of each study the run asks for, in order."""
    names = args.tasks or (list(EIGHT) if args.tasks_set == "eight" else None)
    chosen: list[str] = []
    for name in args.strategies or ["engine"]:
        chosen += list(strategies()) if name == "engine" else [name]
    unknown = sorted(set(chosen) - {*strategies(), "gepa"})
    if unknown:
        raise SystemExit(f"this engine has no strategy {', '.join(unknown)}: {strategies()}")
    return [
        (name, path, strategy, seed)
        for seed in range(args.seeds)
        for name, path in task_files(args.suite, names)
        for strategy in chosen
    ]


class _Run:
    """One run of the bench: its ledger, servers and settings, and each study to its end."""

    def __init__(self, args: argparse.Namespace, budget: Budget, servers: tuple[Server, Server]):
        self.args, self.budget, self.servers = args, budget, servers
        self.ledger = Ledger(LEDGER)
        self.demos = None if args.scoring_demos == "default" else int(args.scoring_demos)
        self.commit = engine_commit()
        self.options = parse_options(args.set)
        self.system: str | None = args.system  # None: the engine's own
        # the system message in a study's identity: None for the one of the rows written
        # before it could change (the engine's first), so that they keep their keys
        said = args.system if args.system is not None else Templates().scoring_system
        self.system_key = None if said == FIRST_SCORING_SYSTEM else said
        self.policy: str = args.policy

    def base(self, name: str, strategy: str, seed: int, shared: bool) -> dict[str, Any]:
        """A study's identity (the ledger's key); `start` only where the start is shared and
        `system` only where the system message is not the engine's, so the other studies keep
        the identity they always had."""
        base = {"suite": self.args.suite, "task": name, "strategy": strategy,
                "scoring_demos": self.demos, "seed": seed, "budget": asdict(self.budget),
                "options": None if strategy == "gepa" else self.options}  # fmt: skip
        if shared:
            base["start"] = "shared"
        if self.system_key is not None:
            base["system"] = self.system_key
        if self.policy != UNNAMED_POLICY and strategy != "gepa":
            base["policy"] = self.policy
        return base

    async def study(
        self, name: str, path: Path, strategy: str, seed: int, pool: Path | None = None
    ) -> bool:
        """One study, unless the ledger has it; False when it failed (the next run tries it
        again)."""
        base = self.base(name, strategy, seed, shared=pool is not None)
        if study_key(base) in self.ledger.done():
            return True
        start = " (shared start)" if pool is not None else ""
        print(f"{name} {strategy} demos={self.demos} seed={seed}{start} ...", flush=True)
        budget, servers = self.budget, self.servers
        try:
            if strategy == "gepa":
                calls = gepa_budget(self.ledger, base, budget.scoring_calls)
                lender = gepa_lender(self.ledger, base, calls)
                if lender is not None:
                    print(f"  GEPA's search of {lender.get('finished')}, scored again", flush=True)
                outcome = await gepa_study(name, path, self.demos, seed, budget, calls, servers,
                                           self.system, lender)  # fmt: skip
            else:
                outcome = await engine_study(name, path, strategy, self.demos, seed, budget,
                                             servers, self.options, pool, self.system,
                                             self.system_key, self.policy)  # fmt: skip
        except (RuntimeError, subprocess.CalledProcessError) as error:
            # not recorded: the next run tries it again; the others go on meanwhile
            print(f"  failed, left for the next run: {error}", flush=True)
            return False
        record = {**base, **outcome, "engine": self.commit, "target": servers[0].file,
                  "proposer": servers[1].file,
                  "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}  # fmt: skip
        self.ledger.append(record)
        print(f"  pick {outcome['pick']['score']:.3f} human {outcome['human']['score']:.3f} "
              f"({outcome['seconds']:.0f} s): {outcome['pick']['instruction'][:80]!r}",
              flush=True)  # fmt: skip
        return True

    async def pool(self, name: str, path: Path, seed: int) -> Path | None:
        """The initial candidates every strategy of this task and seed starts from: those of
        the `resample` study with its own start (run first when the ledger lacks it)."""
        file = POOLS / f"{name}-{self.demos}-{seed}-{_tag(self.options)}.jsonl"
        if file.is_file():
            return file
        if not await self.study(name, path, "resample", seed):
            return None
        journal = journal_path(name, "resample", self.demos, seed, self.options,
                               system=self.system_key, policy=self.policy)  # fmt: skip
        if not journal.is_file():
            print(f"  no journal of its own-start resample study ({journal}): delete its line "
                  "from the ledger to run it again", flush=True)  # fmt: skip
            return None
        write_pool(file, initial_pool(journal))
        return file


async def run(args: argparse.Namespace, budget: Budget) -> None:
    with bench_servers(args.threads, args.ports) as servers:
        bench = _Run(args, budget, servers)
        for name, path, strategy, seed in _plan(args):
            pool = None
            if args.start == "shared" and strategy != "gepa":
                pool = await bench.pool(name, path, seed)
                if pool is None:
                    continue
            await bench.study(name, path, strategy, seed, pool)


def _stop(number: int, _frame: object) -> None:
    raise SystemExit(f"stopped by signal {number}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--suite", choices=sorted(SUITES), default="ii",
        help="ii: the 24 instruction-induction tasks; bigbench: the final check (never tune on it)")  # fmt: skip
    add("--tasks", nargs="+", default=None, help="task names (default: every task of the suite)")
    add("--tasks-set", choices=("all", "eight"), default="all",
        help="eight: the 8 tasks of bench/real_model.py")  # fmt: skip
    add("--strategies", nargs="+", default=None,
        help=f"of {(*strategies(), 'gepa')}; engine: all the engine's (the default)")  # fmt: skip
    add("--set", action="append", default=[], metavar="KEY=VALUE",
        help="another setting of the engine's studies (parents=pareto, merge=true)")  # fmt: skip
    add("--scoring-demos", default="0", help="demo turns before the input: 0 or default (3)")
    add("--start", choices=("shared", "own"), default="shared",
        help="shared: every strategy starts from the same initial candidates; own: each "
             "study proposes its own")  # fmt: skip
    add("--system", default=None, metavar="TEXT",
        help="another output-only system message for the engine's studies and the test scores "
             "of GEPA's pick (GEPA searches with DSPy's own prompts); part of each study's "
             "identity")  # fmt: skip
    policy = next(one for one in SETTINGS if one.flat == "policy")
    add("--policy", choices=policy.choices, default=policy.default,
        help=f"the engine studies' scheduler policy (default: the engine's, {policy.default})")  # fmt: skip
    add("--seeds", type=int, default=1)
    add("--threads", type=int, default=1, help="llama.cpp threads per model")
    add("--ports", type=int, nargs=2, default=[18431, 18432], metavar=("TARGET", "PROPOSER"),
        help="the model servers' ports, the same on every run (the cache keys answers by URL)")  # fmt: skip
    for field, value in asdict(Budget()).items():
        add(f"--{field.replace('_', '-')}", type=int, default=value)
    add("--report", action="store_true", help="print the tables of the finished studies only")
    args = parser.parse_args(argv)
    if args.scoring_demos not in ("default",) and not args.scoring_demos.isdigit():
        parser.error("--scoring-demos: give a number or default")
    budget = Budget(**{field: getattr(args, field) for field in asdict(Budget())})
    if not args.report:
        signal.signal(signal.SIGTERM, _stop)  # `kill PID` stops the model servers too
        anyio.run(run, args, budget)
    print(report(Ledger(LEDGER).records(), models=[m.filename for m in MODELS.values()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
