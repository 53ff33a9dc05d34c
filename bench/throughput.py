"""Throughput benchmark of the LLM client layer, against the simulator on loopback.

Five results in one run, each beside its goal:
1. client CPU per call at 1,000 concurrent calls, zero latency, vs the baseline a user would
   write (official ``openai`` AsyncOpenAI + ``asyncio.Semaphore``), ratio of medians over repeats;
2. utilisation of a known limit (6,000 rpm / 600,000 tpm, 200 ms latency, engine told);
3. adaptive mode with the limit unknown (with header re-sync, and with headers ignored: pure AIMD);
4. resident memory per in-flight call at 10,000 concurrent calls with 2 s latency;
5. 5 % faults: every logical call ends exactly once, success or final error.

The simulator always runs in its own process (``python -m engine sim``), so its CPU and memory
are not counted. Writes bench/results/throughput.json. ``--quick`` shortens every part.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.llm import (  # noqa: E402
    AiohttpTransport,
    EndpointConfig,
    LeanTransport,
    LLMClient,
    LLMError,
    RetryPolicy,
    Transport,
)
from engine.sim import SimConfig, start_sim_process  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MESSAGES = [{"role": "user", "content": "Write the word in reverse.\n\nInput: engine\nOutput:"}]
LIMIT_RPM = 6000
LIMIT_TPM = 600_000


# -- the simulator in its own process -----------------------------------------------------------


def sim_config(
    *,
    latency_s: float = 0.0,
    rpm: int | None = None,
    tpm: int | None = None,
    fault_rate: float = 0.0,
) -> SimConfig:
    """The simulator a part needs; `start_sim_process` turns it into `ape-engine sim` flags.
    Faults are four kinds (500, 503, reset, malformed) in equal shares."""
    share = fault_rate / 4
    return SimConfig(
        tasks=("reverse_word",),
        latency_base_s=latency_s,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        fault_500=share,
        fault_503=share,
        fault_reset=share,
        fault_malformed=share,
        debug_routes=True,
    )


@contextlib.asynccontextmanager
async def simulator(config: SimConfig) -> AsyncIterator[str]:
    """`python -m engine sim --port 0 ...` in a child process, for the duration of the block."""
    with start_sim_process(config) as url:
        yield url.rstrip("/")


async def sim_stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/sim/stats") as response:
        data: dict[str, Any] = await response.json()
        return data


def endpoint(url: str, **options: Any) -> EndpointConfig:
    values: dict[str, Any] = {"name": "sim", "base_url": url, "model": "sim-1", "api_key": None}
    values.update(options)
    return EndpointConfig(**values)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- 1. client CPU per call ------------------------------------------------------------------------


async def cpu_ours(url: str, calls: int, concurrency: int) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, failed calls) of `calls` calls at `concurrency`."""
    config = endpoint(url, concurrency=concurrency)
    async with LLMClient(config) as client:
        await asyncio.gather(*(client.chat(MESSAGES, max_tokens=8) for _ in range(100)))
        cpu, wall = time.process_time(), time.perf_counter()
        outcomes = await asyncio.gather(
            *(client.chat(MESSAGES, max_tokens=8) for _ in range(calls)), return_exceptions=True
        )
        used = time.process_time() - cpu, time.perf_counter() - wall
    return *used, sum(isinstance(outcome, BaseException) for outcome in outcomes)


async def cpu_openai(url: str, calls: int, concurrency: int) -> tuple[float, float, int]:
    """The same with the code a user would write: the official client and a semaphore. Its
    timeout is raised from the default 600 s read / 5 s connect to 120 s overall, as connects
    queue behind a busy simulator at 1,000 concurrent calls (httpx keeps only 100 idle)."""
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="sk-bench", timeout=120.0)
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> str | None:
        async with semaphore:
            answer = await client.chat.completions.create(
                model="sim-1",
                messages=MESSAGES,  # type: ignore[arg-type]
                max_tokens=8,
                temperature=0.0,
            )
            return answer.choices[0].message.content

    try:
        await asyncio.gather(*(one() for _ in range(100)))
        cpu, wall = time.process_time(), time.perf_counter()
        outcomes = await asyncio.gather(*(one() for _ in range(calls)), return_exceptions=True)
        used = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await client.close()
    return *used, sum(isinstance(outcome, BaseException) for outcome in outcomes)


async def part_cpu(quick: bool) -> dict[str, Any]:
    calls, repeats, concurrency = (3000, 2, 1000) if quick else (5000, 3, 1000)
    ours: list[tuple[float, float, int]] = []
    base: list[tuple[float, float, int]] = []
    async with simulator(sim_config()) as url:
        for _ in range(repeats):  # alternated, so that load from elsewhere hits both alike
            ours.append(await cpu_ours(url, calls, concurrency))
            base.append(await cpu_openai(url, calls, concurrency))
    ours_cpu = statistics.median(cpu for cpu, _, _ in ours) / calls * 1000
    base_cpu = statistics.median(cpu for cpu, _, _ in base) / calls * 1000
    ratios = [o[0] / b[0] for o, b in zip(ours, base, strict=True)]
    return {
        "calls": calls,
        "repeats": repeats,
        "concurrency": concurrency,
        "ours_cpu_s_per_1000": ours_cpu,
        "baseline_cpu_s_per_1000": base_cpu,
        "ours_calls_per_s": statistics.median(calls / wall for _, wall, _ in ours),
        "baseline_calls_per_s": statistics.median(calls / wall for _, wall, _ in base),
        "ours_failed": sum(failed for _, _, failed in ours),
        "baseline_failed": sum(failed for _, _, failed in base),
        "cpu_ratio": ours_cpu / base_cpu,
        "cpu_ratio_per_repeat": ratios,
        "goal": "cpu_ratio <= 0.5",
        "met": ours_cpu / base_cpu <= 0.5,
    }


# -- 2 and 3. limits -----------------------------------------------------------------------------------


async def drive(
    client: LLMClient, duration_s: float, workers: int, record: Callable[[float, bool], None]
) -> None:
    """`workers` loops calling until the deadline; `record(t, ok)` per logical call."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + duration_s

    async def worker() -> None:
        while loop.time() < deadline:
            try:
                await client.chat(MESSAGES, max_tokens=16)
                record(loop.time() - start, True)
            except LLMError:
                record(loop.time() - start, False)

    await asyncio.gather(*(worker() for _ in range(workers)))


async def limit_run(url: str, config: EndpointConfig, duration_s: float) -> dict[str, Any]:
    successes: list[float] = []
    failures = 0

    def record(t: float, ok: bool) -> None:
        nonlocal failures
        if ok:
            successes.append(t)
        else:
            failures += 1

    async with LLMClient(config) as client:
        before = await sim_stats(url)
        await drive(client, duration_s, workers=256, record=record)
        after = await sim_stats(url)
        stats = client.stats()
        reading = client.limiter.reading()

    def count(status: str, stats_json: dict[str, Any]) -> int:
        return int(stats_json.get("by_status", {}).get(status, 0))

    limit_per_s = LIMIT_RPM / 60.0
    warm = min(10.0, duration_s / 3)
    late = [t for t in successes if warm <= t < duration_s]
    return {
        "duration_s": duration_s,
        "successes": len(successes),
        "failures": failures,
        "achieved_share": len([t for t in successes if t < duration_s])
        / (duration_s * limit_per_s),
        "achieved_share_after_warmup": len(late) / ((duration_s - warm) * limit_per_s),
        "client_429": stats.rate_limited,
        "server_429": count("429", after) - count("429", before),
        "attempts": stats.attempts,
        "final_rpm_setting": reading.requests_per_minute,
        "rate_limited_timeline": None,
    }


async def part_known_limit(quick: bool) -> dict[str, Any]:
    duration = 15.0 if quick else 60.0
    arguments = sim_config(latency_s=0.2, rpm=LIMIT_RPM, tpm=LIMIT_TPM)
    async with simulator(arguments) as url:
        config = endpoint(
            url, requests_per_minute=LIMIT_RPM, tokens_per_minute=LIMIT_TPM, concurrency=256
        )
        result = await limit_run(url, config, duration)
    result["goal"] = "achieved >= 98 % of the limit, zero 429s"
    result["met"] = result["achieved_share"] >= 0.98 and result["server_429"] == 0
    return result


async def drain_server(url: str) -> int:
    """Spend the simulator's stored allowance (a full minute of requests, as OpenAI's buckets
    hold) with plain requests until it answers 429, so that the limit binds from the start."""
    body = {"model": "sim-1", "messages": MESSAGES, "max_tokens": 1}
    sent = 0
    connector = aiohttp.TCPConnector(limit=500)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.post(f"{url}/chat/completions", json=body) as response:
                await response.read()
                return response.status

        while True:
            statuses = await asyncio.gather(*(one() for _ in range(500)))
            sent += len(statuses)
            if 429 in statuses:
                return sent


async def adaptive_run(url: str, duration: float, headers: bool) -> dict[str, Any]:
    config = endpoint(url, adaptive=True, concurrency=256, rate_limit_headers=headers)
    drained = await drain_server(url)
    samples: list[tuple[float, int, int]] = []  # (seconds, attempts, 429s) every 100 ms
    successes: list[float] = []
    async with LLMClient(config) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        done = asyncio.Event()

        async def sampler() -> None:
            while not done.is_set():
                snapshot = client.stats()
                samples.append((loop.time() - start, snapshot.attempts, snapshot.rate_limited))
                await asyncio.sleep(0.1)

        def record(t: float, ok: bool) -> None:
            if ok:
                successes.append(t)

        task = asyncio.create_task(sampler())
        await drive(client, duration, workers=256, record=record)
        done.set()
        await task
        stats = client.stats()
        reading = client.limiter.reading()
    warm = 10.0
    at_warm = next((sample for sample in samples if sample[0] >= warm), samples[-1])
    after_attempts = stats.attempts - at_warm[1]
    after_429 = stats.rate_limited - at_warm[2]
    late = [t for t in successes if warm <= t < duration]
    share = after_429 / after_attempts if after_attempts else 0.0
    achieved = len(late) / ((duration - warm) * LIMIT_RPM / 60.0)
    return {
        "headers": headers,
        "duration_s": duration,
        "drained_before": drained,
        "share_429_after_10s": share,
        "attempts_after_10s": after_attempts,
        "achieved_share_after_10s": achieved,
        "total_429": stats.rate_limited,
        "final_rpm_setting": reading.requests_per_minute,
        "met": share < 0.01 and achieved >= 0.90,
    }


async def part_adaptive(quick: bool) -> dict[str, Any]:
    duration = 25.0 if quick else 60.0
    arguments = sim_config(latency_s=0.2, rpm=LIMIT_RPM, tpm=LIMIT_TPM)
    runs = []
    for headers in (True, False):
        async with simulator(arguments) as url:
            runs.append(await adaptive_run(url, duration, headers))
    return {
        "with_headers": runs[0],
        "pure_aimd": runs[1],
        "goal": "429 share after 10 s < 1 %, achieved >= 90 %",
        "met": runs[0]["met"] and runs[1]["met"],
    }


# -- 4. memory per in-flight call ----------------------------------------------------------------------

MEMORY_LATENCY_S = 2.0


async def memory_run(calls: int, connections: int, queue: str) -> dict[str, Any]:
    """`calls` concurrent calls over `connections` HTTP/1.1 connections. Calls beyond the
    connections wait in the client's limiter (``queue="limiter"``: concurrency = connections) or
    inside aiohttp's connector (``queue="connector"``: limiter unbounded, connector pool sized
    to `connections`), or, with ``queue="lean"``, in the limiter with `engine.llm.transport.lean`'s
    transport instead of aiohttp. Resident growth is read once every connection carries a
    request and before the first answer (the simulator answers after 2 s)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 2 * calls + 1000)), hard))
    async with simulator(sim_config(latency_s=MEMORY_LATENCY_S)) as url:
        limit = calls if queue == "connector" else connections
        config = endpoint(url, concurrency=limit, timeout_s=120)
        kind = LeanTransport if queue == "lean" else AiohttpTransport
        transport: Transport = kind(
            url,
            endpoint="sim",
            headers={"Accept": "application/json"},
            connections=connections,
            connect_timeout_s=30,
            timeout_s=120,
        )
        async with (
            LLMClient(config, transport=transport) as client,
            aiohttp.ClientSession() as probe,
        ):
            await asyncio.gather(*(client.chat(MESSAGES, max_tokens=8) for _ in range(200)))

            async def at_server() -> int:
                async with probe.get(f"{url}/sim/stats") as response:
                    return int((await response.json())["requests"]) - 200

            await at_server()
            gc.collect()
            base = rss_bytes()
            finished = 0
            started = time.perf_counter()

            async def one() -> None:
                nonlocal finished
                await client.chat(MESSAGES, max_tokens=8)
                finished += 1

            tasks = [asyncio.create_task(one()) for _ in range(calls)]
            growth, sent = 0, 0
            lean = transport if isinstance(transport, LeanTransport) else None
            while finished == 0 or lean is not None:
                await asyncio.sleep(0.05)
                if lean is not None:
                    # its own count, no probe to wait on; the calls on the warm-up's 200 open
                    # connections are answered before the last of the others connect
                    sent = lean.requests_in_flight + finished
                else:
                    sent = await at_server()
                growth = rss_bytes() - base
                if sent >= connections:  # every connection carries a request
                    await asyncio.sleep(0.2)
                    growth = rss_bytes() - base
                    break
            await asyncio.gather(*tasks)
            wall = time.perf_counter() - started
    return {
        "calls": calls,
        "connections": connections,
        "queue": queue,
        "requests_at_server_when_measured": sent,
        "counted_by": "server" if queue != "lean" else "client (in flight + answered)",
        "rss_growth_mb": growth / 1e6,
        "bytes_per_call": growth / calls,
        "calls_per_s": calls / wall,
        "seconds_for_all": wall,
    }


class _BareRequest(asyncio.Protocol):
    """One request on its own asyncio connection, answered when the status line and headers
    arrive: the floor under any HTTP client (no parser, no pool, no timeouts)."""

    def __init__(self, answered: asyncio.Future[None]) -> None:
        self.answered = answered
        self.received = bytearray()

    def data_received(self, data: bytes) -> None:
        self.received += data
        if b"\r\n\r\n" in self.received and not self.answered.done():
            self.answered.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_exception(ConnectionError("closed before an answer"))


async def bare_run(calls: int) -> dict[str, Any]:
    """What `calls` bare asyncio connections with a task and a request each cost: the part of
    part 4 that no HTTP client on asyncio can avoid."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 2 * calls + 1000)), hard))
    async with simulator(sim_config(latency_s=MEMORY_LATENCY_S)) as url:
        address = url.split("//", 1)[1].split("/", 1)[0]
        host, port = address.rsplit(":", 1)
        body = orjson.dumps({"model": "sim-1", "messages": MESSAGES, "max_tokens": 8})
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {address}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        request = head.encode() + body
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as probe:

            async def at_server() -> int:
                async with probe.get(f"{url}/sim/stats") as response:
                    return int((await response.json())["requests"])

            await at_server()
            gc.collect()
            base = rss_bytes()

            async def one() -> None:
                answered: asyncio.Future[None] = loop.create_future()
                transport, _ = await loop.create_connection(
                    lambda: _BareRequest(answered), host, int(port)
                )
                try:
                    transport.write(request)
                    await answered
                finally:
                    transport.close()

            tasks = [asyncio.create_task(one()) for _ in range(calls)]
            sent, growth = 0, 0
            while not any(task.done() for task in tasks):
                await asyncio.sleep(0.05)
                sent = await at_server()
                growth = rss_bytes() - base
                if sent >= calls:
                    await asyncio.sleep(0.2)
                    growth = rss_bytes() - base
                    break
            await asyncio.gather(*tasks)
    return {
        "calls": calls,
        "connections": calls,
        "queue": "bare asyncio",
        "requests_at_server_when_measured": sent,
        "rss_growth_mb": growth / 1e6,
        "bytes_per_call": growth / calls,
    }


def memory_child(calls: int, connections: int, queue: str) -> dict[str, Any]:
    """One variant in a fresh interpreter: resident growth depends on what the heap held
    before, so each variant starts from the same empty process."""
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-child"]
    command += [str(calls), str(connections), queue]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=str(ROOT))
    if done.returncode != 0:
        raise RuntimeError(f"memory variant {calls}/{connections}/{queue}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def part_memory(quick: bool) -> dict[str, Any]:
    calls = 3000 if quick else 10_000
    pool = calls // 5
    one_each = memory_child(calls, calls, "limiter")
    pooled = [memory_child(calls, pool, queue) for queue in ("limiter", "connector")]
    bare = memory_child(calls, calls, "bare")
    lean = memory_child(calls, calls, "lean")
    per_call = one_each["bytes_per_call"]
    return {
        "calls": calls,
        "latency_s": MEMORY_LATENCY_S,
        "bytes_per_in_flight_call": per_call,
        "one_connection_per_call": one_each,
        "pooled": pooled,
        "bare_asyncio_floor": bare,
        "lean_one_connection_per_call": lean,
        "goal": "< 10 KB per in-flight call",
        "met": per_call < 10_240,
        "met_with_lean_transport": lean["bytes_per_call"] < 10_240,
    }


# -- 5. faults ------------------------------------------------------------------------------------


async def faults_run(calls: int, max_attempts: int) -> dict[str, Any]:
    outcomes = {"succeeded": 0, "failed": 0, "lost": 0}
    final_kinds: dict[str, int] = {}
    async with simulator(sim_config(fault_rate=0.05)) as url:
        retry = RetryPolicy(max_attempts=max_attempts, base_delay_s=0.01, max_delay_s=0.2)
        config = endpoint(url, concurrency=200, retry=retry, timeout_s=5.0)
        async with LLMClient(config) as client:
            before = await sim_stats(url)

            async def one() -> None:
                try:
                    await client.chat(MESSAGES, max_tokens=8)
                    outcomes["succeeded"] += 1
                except LLMError as error:
                    outcomes["failed"] += 1
                    final_kinds[error.kind] = final_kinds.get(error.kind, 0) + 1

            results = await asyncio.gather(*(one() for _ in range(calls)), return_exceptions=True)
            outcomes["lost"] = sum(1 for result in results if isinstance(result, BaseException))
            after = await sim_stats(url)
            stats = client.stats()
    server_requests = int(after.get("requests", 0)) - int(before.get("requests", 0))
    ended = outcomes["succeeded"] + outcomes["failed"]
    return {
        "calls": calls,
        "max_attempts": max_attempts,
        **outcomes,
        "final_errors": final_kinds,
        "client_calls": stats.calls,
        "client_failed": stats.failed,
        "client_attempts": stats.attempts,
        "client_retries": stats.retries,
        "errors_by_kind": stats.errors,
        "server_requests": server_requests,
        "met": ended == calls
        and outcomes["lost"] == 0
        and stats.calls == calls
        and stats.failed == outcomes["failed"]
        and stats.attempts == server_requests
        and stats.attempts == calls + stats.retries,
    }


async def part_faults(quick: bool) -> dict[str, Any]:
    """5 % faults with the default six attempts (all recover), and with two (about 0.25 % of
    the calls fail for good), so that both endings are counted."""
    calls = 2000 if quick else 10_000
    runs = [await faults_run(calls, attempts) for attempts in (6, 2)]
    return {
        "runs": runs,
        "goal": "every call ends once: succeeded + failed == calls, none lost, each attempt "
        "counted once (client attempts == calls + retries == requests the server saw)",
        "met": all(run["met"] for run in runs),
    }


# -- report -------------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    rows = []
    cpu = results.get("cpu")
    if cpu:
        rows.append(
            (
                "1 client CPU / call vs openai+Semaphore",
                f"{cpu['cpu_ratio']:.3f}x ({cpu['ours_cpu_s_per_1000']:.3f} vs "
                f"{cpu['baseline_cpu_s_per_1000']:.3f} CPU-s/1000 calls; "
                f"{cpu['ours_calls_per_s']:.0f} vs {cpu['baseline_calls_per_s']:.0f} calls/s)",
                "<= 0.5x",
                cpu["met"],
            )
        )
    known = results.get("known_limit")
    if known:
        rows.append(
            (
                "2 known limit 6000 rpm, 200 ms",
                f"{known['achieved_share']:.1%} of limit ({known['achieved_share_after_warmup']:.1%} "
                f"after warm-up), {known['server_429']} x 429",
                ">= 98 %, 0 x 429",
                known["met"],
            )
        )
    adaptive = results.get("adaptive")
    if adaptive:
        for label, run in (
            ("headers", adaptive["with_headers"]),
            ("pure AIMD", adaptive["pure_aimd"]),
        ):
            rows.append(
                (
                    f"3 unknown limit ({label})",
                    f"429 share after 10 s {run['share_429_after_10s']:.2%}, achieved "
                    f"{run['achieved_share_after_10s']:.1%}",
                    "< 1 %, >= 90 %",
                    run["met"],
                )
            )
    memory = results.get("memory")
    if memory:
        one = memory["one_connection_per_call"]
        rows.append(
            (
                f"4 memory / in-flight call ({memory['calls']} calls, one connection each)",
                f"{one['bytes_per_call'] / 1024:.1f} KB ({one['calls_per_s']:.0f} calls/s)",
                "< 10 KB",
                memory["met"],
            )
        )
        for variant in memory["pooled"]:
            rows.append(
                (
                    f"  same calls over {variant['connections']} connections, "
                    f"queued in the {variant['queue']}",
                    f"{variant['bytes_per_call'] / 1024:.1f} KB per call "
                    f"({variant['calls_per_s']:.0f} calls/s)",
                    "(the trade)",
                    variant["bytes_per_call"] < 10_240,
                )
            )
        lean = memory["lean_one_connection_per_call"]
        rows.append(
            (
                "  the same, one connection each, lean transport (opt-in)",
                f"{lean['bytes_per_call'] / 1024:.1f} KB ({lean['calls_per_s']:.0f} calls/s)",
                "< 10 KB",
                memory["met_with_lean_transport"],
            )
        )
        bare = memory["bare_asyncio_floor"]
        rows.append(
            (
                "  floor: a bare asyncio connection + task per call, no HTTP client",
                f"{bare['bytes_per_call'] / 1024:.1f} KB per call",
                "(for reference)",
                bare["bytes_per_call"] < 10_240,
            )
        )
    faults = results.get("faults")
    for run in faults["runs"] if faults else ():
        rows.append(
            (
                f"5 faults 5 %, {run['max_attempts']} attempts",
                f"{run['succeeded']} ok + {run['failed']} final = "
                f"{run['succeeded'] + run['failed']} of {run['calls']}, "
                f"{run['lost']} lost, {run['client_attempts']} attempts "
                f"(server saw {run['server_requests']})",
                "all end exactly once",
                run["met"],
            )
        )
    width = max(len(row[0]) for row in rows)
    lines = [f"{'part'.ljust(width)}  {'result':<70}  {'goal':<20}  met"]
    for name, result, goal, met in rows:
        lines.append(f"{name.ljust(width)}  {result:<70}  {goal:<20}  {'yes' if met else 'NO'}")
    return "\n".join(lines)


PARTS: dict[str, Callable[[bool], Awaitable[dict[str, Any]]]] = {
    "cpu": part_cpu,
    "known_limit": part_known_limit,
    "adaptive": part_adaptive,
    "memory": part_memory,
    "faults": part_faults,
}


async def main_async(quick: bool, parts: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"quick": quick, "python": sys.version.split()[0]}
    for name in parts:
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = await PARTS[name](quick)
        results[name]["wall_s"] = time.perf_counter() - started
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, for a smoke test")
    parser.add_argument("--parts", nargs="*", choices=list(PARTS), default=list(PARTS))
    parser.add_argument(
        "--json", metavar="PATH", default=None,
        help="where to write the results (default bench/results/throughput[-quick].json; "
        "'-' prints them instead of the table)",
    )  # fmt: skip
    parser.add_argument("--memory-child", nargs=3, metavar=("CALLS", "CONNECTIONS", "QUEUE"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.memory_child:
        calls, connections, queue = args.memory_child
        if queue == "bare":
            print(json.dumps(asyncio.run(bare_run(int(calls)))))
        else:
            print(json.dumps(asyncio.run(memory_run(int(calls), int(connections), queue))))
        return 0
    results = asyncio.run(main_async(args.quick, args.parts))
    text = json.dumps(results, indent=2, default=str)
    if args.json == "-":
        print(text)
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    default = RESULTS / ("throughput-quick.json" if args.quick else "throughput.json")
    path = Path(args.json) if args.json else default
    path.write_text(text)
    print(table(results))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
