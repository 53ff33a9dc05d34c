"""A small OpenAI-compatible stand-in with a known world, for end-to-end tests of the study
while the full simulator (engine.sim) is elsewhere: proposals of numbered instructions with a
latent quality from a hash of their text, answers right with that probability, per-request
counts. Run alone: `python -m tests.e2e.standin TASK SEED PORT LATENCY_S` (prints the URL when ready)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
from collections import Counter
from typing import Any

from aiohttp import web

from engine.task import Example, load_task


def unit(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def quality(instruction: str) -> float:
    base = re.sub(r"\s*\(variant [\d.]+\)$", "", instruction)
    q = 0.25 + 0.5 * unit("q", base) ** 2
    if base != instruction:
        q += 0.1 * (unit("v", instruction) - 0.5)
    return max(0.0, min(1.0, q))


class StandIn:
    def __init__(self, examples: tuple[Example, ...], latency_s: float = 0.0) -> None:
        self.answers = {e.input: e.outputs[0] for e in examples}
        self.latency_s = latency_s
        self.requests = 0
        self.scoring: Counter[tuple[str, str]] = Counter()
        self.proposals = 0

    def answer(self, content: str, n: int) -> list[str]:
        if content.startswith("I gave a friend"):
            self.proposals += 1
            return [f"Do task step {int(unit('p', content, str(i)) * 1e6)}." for i in range(n)]
        if content.startswith("Generate a variation"):
            self.proposals += 1
            parent = content.split("Input: ", 1)[1].split("\n\nOutput:", 1)[0]
            parent = re.sub(r"\s*\(variant [\d.]+\)$", "", parent)
            return [f"{parent} (variant {self.proposals}.{i})" for i in range(n)]
        instruction, rest = content.split("\n\nInput: ", 1)
        given = rest.rsplit("\nOutput:", 1)[0]
        self.scoring[(instruction, given)] += 1
        right = self.answers.get(given, "?")
        return [right if unit("a", instruction, given) < quality(instruction) else "wrong"]

    async def chat(self, request: web.Request) -> web.Response:
        self.requests += 1
        body: dict[str, Any] = await request.json()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        texts = self.answer(body["messages"][0]["content"], int(body.get("n", 1)))
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": t},
                        "finish_reason": "stop",
                    }
                    for i, t in enumerate(texts)
                ],
                "usage": {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23},
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app


async def serve(task: str, seed: int, port: int, latency_s: float) -> None:
    standin = StandIn(load_task(task, seed=seed).examples, latency_s)
    runner = web.AppRunner(standin.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    while True:
        await asyncio.sleep(0.5)
        print(f"requests {standin.requests}", flush=True)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
