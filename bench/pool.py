"""A study on several servers: the share of their summed rate limits it uses, and a server that
dies halfway.

Each server is a simulator in its own process (``python -m engine sim``: its own port, its own
request limit, a stated latency). The study is a real one (`engine.app`: late binding, an
`EndpointPool` over the servers, the limits known: ``--rpm`` is each server's), run with the
``uniform`` policy and a time budget so that it keeps scoring until the budget ends.

1. For N = 1, 2, 4, 8 servers: the requests the servers answered per minute between the end of
   a warm-up and just before the budget ends (read from each server's ``/v1/sim/stats``), as a
   share of the sum of their limits; the 429s they answered; and the rate per server against
   the run on one server (the baseline, same process).
2. Four servers, one killed (SIGKILL) halfway, started again on its port a few seconds later:
   the study must finish with no call failed for good, every pull recorded once in the journal;
   the calls sent again after their request had reached the dead server (`resent`: they may
   have been served, so paid twice) are counted against the calls that were in flight on it
   when it died (`in_flight_at_death`; a call handed to that server after its death reached no
   one, `sent_while_dead`) -- and the restarted server must take calls again.

    .venv/bin/python bench/pool.py              # about 3 minutes
    .venv/bin/python bench/pool.py --quick      # shorter runs

Writes bench/results/pool.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.app import StudyConfig, prepare  # noqa: E402
from engine.app.execute import open_study  # noqa: E402
from engine.sim import SimConfig  # noqa: E402
from engine.sim.server import sim_process  # noqa: E402
from engine.study.events import PullDone  # noqa: E402
from engine.study.journal import replay_journal  # noqa: E402
from engine.study.study import Study  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TASK = "first_letter"


def _sim(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        tasks=(TASK,),
        seed=7,
        latency_base_s=args.latency,
        requests_per_minute=args.rpm,
        debug_routes=True,
    )


@contextlib.contextmanager
def servers(args: argparse.Namespace, count: int) -> Iterator[list[tuple[str, Any]]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(sim_process(_sim(args))) for _ in range(count)]


async def _stats(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    try:
        async with session.get(f"{url}/sim/stats") as response:
            body: dict[str, Any] = await response.json()
            return body
    except aiohttp.ClientError:
        return None  # a dead server


def _config(args: argparse.Namespace, urls: list[str], folder: Path, seconds: float) -> StudyConfig:
    in_flight = len(urls) * args.rpm / 60.0 * args.latency  # calls on the wire at the limit
    return StudyConfig.of(
        task=TASK,
        endpoints=[{"base_url": url} for url in urls],  # type: ignore[list-item]
        rpm=args.rpm,
        concurrency=max(16, int(4 * in_flight)),
        policy="uniform",
        budget_seconds=seconds,
        initial_candidates=40,
        variant_rounds=0,
        scoring_size=200,
        test_size=10,
        no_cache=True,
        seed=3,
        journal=str(folder / f"pool-{len(urls)}-{time.monotonic_ns()}.jsonl"),
    )


def _answered(stats: dict[str, Any] | None) -> int:
    return 0 if stats is None else int(stats["by_status"].get("200", 0))


def _limited(stats: dict[str, Any] | None) -> int:
    return 0 if stats is None else int(stats["by_status"].get("429", 0))


async def share_of_limits(args: argparse.Namespace, count: int, folder: Path) -> dict[str, Any]:
    """Part 1 for `count` servers."""
    seconds = args.warmup + args.window + 3.0
    with servers(args, count) as running:
        urls = [url for url, _ in running]
        prepared = prepare(_config(args, urls, folder, seconds))
        async with (
            aiohttp.ClientSession() as session,
            open_study(prepared, say=lambda _: None) as study,
            anyio.create_task_group() as group,
        ):
            group.start_soon(study.run)
            await anyio.sleep(args.warmup)
            before = [await _stats(session, url) for url in urls]
            started = time.monotonic()
            await anyio.sleep(args.window)
            after = [await _stats(session, url) for url in urls]
            elapsed = time.monotonic() - started
        limited = sum(_limited(stats) for stats in after)
    answered = sum(_answered(b) - _answered(a) for a, b in zip(before, after, strict=True))
    per_minute = answered / elapsed * 60.0
    return {
        "servers": count,
        "limit_rpm": count * args.rpm,
        "answered_rpm": round(per_minute, 1),
        "share": per_minute / (count * args.rpm),
        "http_429": limited,
    }


def _check_journal(path: Path) -> dict[str, Any]:
    replay = replay_journal(path)
    pulls = [(e.arm, e.example) for e in replay.events if isinstance(e, PullDone)]
    return {"pulls": len(pulls), "distinct_pulls": len(set(pulls))}


async def _watch(study: Study, dead: str, marks: dict[str, Any]) -> None:
    """Until the study ends: the most calls in flight on `dead` and its state."""
    while not study.snapshot().done:
        row = next(r for r in study.snapshot().endpoints if r.endpoint == dead)
        marks.setdefault("states", []).append(row.state)
        await anyio.sleep(0.05)


async def one_dies(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Part 2: four servers, the second killed halfway and started again later."""
    seconds = args.warmup + 2 * args.window
    with servers(args, 4) as running:
        urls = [url for url, _ in running]
        prepared = prepare(_config(args, urls, folder, seconds))
        dead, process = "target-2", running[1][1]
        port = int(urls[1].rsplit(":", 1)[1].split("/")[0])
        marks: dict[str, Any] = {"done": anyio.Event()}
        async with open_study(prepared, say=lambda _: None) as study:
            async with anyio.create_task_group() as group:
                group.start_soon(_run_and_keep, study, marks)
                group.start_soon(_watch, study, dead, marks)
                await anyio.sleep(seconds / 2)
                # killed and gone (its sockets closed) with no await between: no call of the
                # study starts or ends meanwhile
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                killed_at = time.monotonic()
                at_death = next(r for r in study.snapshot().endpoints if r.endpoint == dead)
                await anyio.sleep(args.restart_after)
                while_dead = next(r for r in study.snapshot().endpoints if r.endpoint == dead)
                with sim_process(_sim(args), port=port) as (url, _):
                    marks["restarted_after_s"] = round(time.monotonic() - killed_at, 1)
                    async with aiohttp.ClientSession() as session:
                        await marks["done"].wait()
                        stats = await _stats(session, url)
                    marks["answered_after_restart"] = _answered(stats)
            rows = {r.endpoint: r for r in study.snapshot().endpoints}
    result = marks["result"]
    journal = _check_journal(prepared.journal_path)
    return {
        "status": result.status,
        "failed_for_good": sum(result.failures.values()),
        "scoring_calls": result.spend.scoring_calls,
        **journal,
        "in_flight_at_death": at_death.in_flight,
        "sent_while_dead": while_dead.calls - at_death.calls,
        "resent_while_dead": while_dead.resent - at_death.resent,
        "state_while_dead": while_dead.state,
        "failed_over": rows[dead].failed_over,
        "resent": rows[dead].resent,
        "restarted_after_s": marks["restarted_after_s"],
        "answered_after_restart": marks["answered_after_restart"],
        "states_seen": sorted(set(marks.get("states", []))),
        "calls_per_server": {name: row.calls for name, row in rows.items()},
    }


async def _run_and_keep(study: Study, marks: dict[str, Any]) -> None:
    marks["result"] = await study.run()
    marks["done"].set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpm", type=float, default=1200.0, help="each server's limit")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per call")
    parser.add_argument("--servers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--restart-after", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only-death", action="store_true", help="part 2 only")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.window = 3.0, 8.0
    folder = Path(tempfile.mkdtemp(prefix="ape-pool-"))
    shares = (
        []
        if args.only_death
        else [anyio.run(share_of_limits, args, count, folder) for count in args.servers]
    )
    base = shares[0]["answered_rpm"] / shares[0]["servers"] if shares else 1.0
    print(
        "\n| servers | sum of limits (rpm) | answered (rpm) | share of the sum | 429s | per server vs 1 |"
    )
    print("|---|---|---|---|---|---|")
    for row in shares:
        row["per_server_vs_one"] = row["answered_rpm"] / row["servers"] / base
        print(
            f"| {row['servers']} | {row['limit_rpm']:,.0f} | {row['answered_rpm']:,.0f} | "
            f"{row['share']:.1%} | {row['http_429']} | {row['per_server_vs_one']:.3f} |"
        )
    death = anyio.run(one_dies, args, folder)
    print("\n" + orjson.dumps(death, option=orjson.OPT_INDENT_2).decode())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "pool.json"
    machine = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": sys.version}
    summary = {"args": vars(args), "machine": machine, "shares": shares, "one_dies": death}
    out.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
