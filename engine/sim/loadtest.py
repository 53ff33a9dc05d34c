"""How many requests per second the simulator answers on loopback with zero latency.

Runs the simulator in its own process (`start_sim_process`) and drives it from this one with a
single aiohttp session and many concurrent workers, over a mix of scoring chat calls, scoring
completions with echo + logprobs, and proposal calls. Prints requests/s per kind of call.

    .venv/bin/python -m engine.sim.loadtest [--seconds 5] [--concurrency 256]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
import orjson

from engine.sim.config import SimConfig
from engine.sim.server import start_sim_process
from engine.task import load_task

__all__ = ["main"]


def _bodies(task_name: str) -> dict[str, list[dict[str, Any]]]:
    task = load_task(task_name, seed=0)
    examples = task.examples[:200]
    instruction = task.human_instruction or "Answer."
    chat = [
        {
            "model": "sim-1",
            "messages": [
                {"role": "user", "content": f"{instruction}\n\nInput: {e.input}\nOutput:"}
            ],
            "max_tokens": 16,
            "temperature": 0,
            "stop": ["\n"],
        }
        for e in examples
    ]
    echo = [
        {
            "model": "sim-1",
            "prompt": f"{instruction}\n\nInput: {e.input}\nOutput: {e.outputs[0]}",
            "max_tokens": 0,
            "echo": True,
            "logprobs": 1,
        }
        for e in examples
    ]
    demos = "".join(f"Input: {e.input}\nOutput: {e.outputs[0]}\n\n" for e in examples[:5])
    proposal = [
        {
            "model": "sim-1",
            "messages": [
                {
                    "role": "user",
                    "content": "I gave a friend an instruction and some inputs. The friend read "
                    "the instruction and wrote an output for every one of the inputs. Here are "
                    f"the input-output pairs:\n\n{demos}The instruction was\n\nReply with the "
                    "instruction only.",
                }
            ],
            "n": 4,
            "temperature": 1.0,
        }
    ]
    return {"chat": chat, "echo": echo, "proposal": proposal}


async def _drive(
    url: str, route: str, bodies: list[dict[str, Any]], seconds: float, concurrency: int
) -> float:
    payloads = [orjson.dumps(body) for body in bodies]
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sim"}
    done = 0
    failed = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal done, failed
            index = offset
            while time.perf_counter() < deadline:
                payload = payloads[index % len(payloads)]
                index += 1
                async with session.post(url + route, data=payload, headers=headers) as answer:
                    await answer.read()
                    if answer.status == 200:
                        done += 1
                    else:
                        failed += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    if failed:
        raise RuntimeError(f"{failed} calls failed")
    return done / elapsed


async def _run(seconds: float, concurrency: int, task: str) -> dict[str, float]:
    bodies = _bodies(task)
    results: dict[str, float] = {}
    with start_sim_process(SimConfig(tasks=(task,))) as url:
        await _drive(url, "/chat/completions", bodies["chat"], 1.0, concurrency)  # warm up
        results["chat scoring"] = await _drive(
            url, "/chat/completions", bodies["chat"], seconds, concurrency
        )
        results["completions echo+logprobs"] = await _drive(
            url, "/completions", bodies["echo"], seconds, concurrency
        )
        results["chat proposals (n=4)"] = await _drive(
            url, "/chat/completions", bodies["proposal"], seconds, concurrency
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--task", default="larger_number")
    args = parser.parse_args()
    results = asyncio.run(_run(args.seconds, args.concurrency, args.task))
    print(f"simulator on loopback, zero latency, {args.concurrency} concurrent, one client process")
    for name, rate in results.items():
        print(f"  {name:<28} {rate:8.0f} requests/s")


if __name__ == "__main__":
    main()
