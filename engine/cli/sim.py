"""`ape-engine sim`: run the simulated OpenAI-compatible LLM server until interrupted.

It prints one line when it listens, ending with the base URL (``http://HOST:PORT/v1``), so that
scripts can start it with ``--port 0`` and read where it is.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from engine.cli.signals import stop_on_signals
from engine.errors import ConfigError
from engine.serving.quirks import CHOICES
from engine.serving.settings import FAULT_KINDS
from engine.sim.config import SimConfig
from engine.sim.server import serve_sim

__all__ = ["add_arguments", "config_from_arguments", "main"]

_FAULT_HELP = {
    "500": "share of requests answered with HTTP 500 (server_error)",
    "503": "share of requests answered with HTTP 503 (overloaded)",
    "hang": "share of requests that hang until the client gives up (or --hang-s passes)",
    "reset": "share of requests whose connection is reset (aborted without an answer)",
    "malformed": "share of requests answered 200 with a truncated, unparseable JSON body",
}


def _pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LOW,HIGH such as 0.2,0.6, not {text!r}"
        ) from None
    return low, high


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the simulated OpenAI-compatible LLM server (a simulator, not a real model): "
        "POST /v1/chat/completions, POST /v1/completions (echo, logprobs), GET /v1/models, with "
        "a ground-truth world of instruction qualities, rate limits, latency and faults. "
        "Prints the base URL when ready."
    )
    _add_world_arguments(parser)
    _add_serving_arguments(parser)
    _add_fault_arguments(parser)
    parser.add_argument("--debug-routes", action="store_true",
                        help="serve GET /v1/sim/quality?instruction=... and GET /v1/sim/stats")  # fmt: skip


def _add_world_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulated world: its tasks, seeds and the qualities of instructions."""
    world = parser.add_argument_group("the world")
    world.add_argument(
        "--task", action="append", default=[], metavar="NAME_OR_PATH",
        help="a task to serve: built-in name or task file (repeatable; default: every built-in)",
    )  # fmt: skip
    world.add_argument("--seed", type=int, default=0, help="world seed (0)")
    world.add_argument(
        "--task-seed", type=int, default=None,
        help="seed that built-in tasks are generated with (default: --seed)",
    )  # fmt: skip
    world.add_argument("--model", default="sim-1", help="the model name served (sim-1)")
    world.add_argument(
        "--good-share", type=float, default=0.1,
        help="share of instructions whose latent quality is good (0.1)",
    )  # fmt: skip
    world.add_argument("--good-quality", type=_pair, default=(0.7, 0.95), metavar="LOW,HIGH",
                       help="range of good qualities (0.7,0.95)")  # fmt: skip
    world.add_argument("--mediocre-quality", type=_pair, default=(0.2, 0.6), metavar="LOW,HIGH",
                       help="range of mediocre qualities (0.2,0.6)")  # fmt: skip
    world.add_argument("--bad-quality", type=_pair, default=(0.0, 0.1), metavar="LOW,HIGH",
                       help="range of qualities of off-task proposals (0,0.1)")  # fmt: skip
    world.add_argument("--variant-noise", type=float, default=0.04,
                       help="standard deviation of a variant's quality around its parent's (0.04)")  # fmt: skip
    world.add_argument("--reflect-gain", type=float, default=0.25,
                       help="a reflection's mean gain, as a share of its parent's headroom 1 - q, "
                       "times w / (w + 2) for w wrong answers seen (0.25)")  # fmt: skip
    world.add_argument("--reflect-noise", type=float, default=0.08,
                       help="standard deviation of a reflection's or a merge's quality (0.08)")  # fmt: skip
    world.add_argument("--difficulty-spread", type=float, default=1.5,
                       help="spread of example difficulties, logistic scale (1.5)")  # fmt: skip


def _add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    """How the server answers: address, latency, rate limits, API keys and quota."""
    serving = parser.add_argument_group("serving")
    serving.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serving.add_argument("--port", type=int, default=8000, help="port, 0 for a free one (8000)")
    serving.add_argument("--latency-base-ms", type=float, default=0.0,
                         help="latency of every answer, milliseconds (0)")  # fmt: skip
    serving.add_argument("--latency", type=float, default=None, metavar="SECONDS",
                         help="the same in seconds (overrides --latency-base-ms)")  # fmt: skip
    serving.add_argument("--latency-per-token-ms", type=float, default=0.0,
                         help="added latency per generated token, milliseconds (0)")  # fmt: skip
    serving.add_argument("--latency-per-prompt-token-ms", type=float, default=0.0,
                         help="added latency per uncached prompt token, milliseconds (0)")  # fmt: skip
    serving.add_argument("--prefix-cache-tokens", type=int, default=0, metavar="TOKENS",
                         help="a prefix cache of the last prompts, this many tokens (0: none)")  # fmt: skip
    serving.add_argument("--cached-token-cost", type=float, default=0.1, metavar="SHARE",
                         help="a cached prompt token's cost, share of an uncached one (0.1)")  # fmt: skip
    serving.add_argument("--latency-jitter", type=float, default=0.0, metavar="SIGMA",
                         help="log-normal jitter: latency times exp(N(0, SIGMA)) (0)")  # fmt: skip
    serving.add_argument("--rpm", type=float, default=None,
                         help="requests per minute (token bucket; default unlimited)")  # fmt: skip
    serving.add_argument("--tpm", type=float, default=None,
                         help="tokens per minute, prompt + max_tokens (default unlimited)")  # fmt: skip
    serving.add_argument("--per-key-limits", action="store_true",
                         help="one pair of buckets per API key instead of one for everyone")  # fmt: skip
    serving.add_argument("--require-key", action="append", default=[], metavar="KEY",
                         help="accept only this API key (repeatable; prefer --api-key-env)")  # fmt: skip
    serving.add_argument("--api-key-env", action="append", default=[], metavar="VAR",
                         help="accept only the API key in environment variable VAR (repeatable)")  # fmt: skip
    serving.add_argument("--quota-requests", type=int, default=None, metavar="N",
                         help="after N answered requests, answer 429 insufficient_quota")  # fmt: skip
    quirks = parser.add_argument_group("real servers' behaviours")
    quirks.add_argument("--choices", choices=CHOICES, default="many",
                        help="n > 1: answered (many), refused with a 400 like llama-server and "
                        "Anthropic's OpenAI endpoint (refuse), or one choice like "
                        "llama-cpp-python's server (ignore)")  # fmt: skip
    quirks.add_argument("--reasoning", action="store_true",
                        help="refuse max_tokens, temperature and stop in chat, as OpenAI's "
                        "reasoning models do (max_completion_tokens is taken)")  # fmt: skip
    quirks.add_argument("--chatty", action="store_true",
                        help="chat answers wrapped in a sentence, as small chat models write "
                        "them, unless a system message asks for the output only")  # fmt: skip
    quirks.add_argument("--not-json", action="store_true",
                        help="answer every request with an HTML page (a web server that is "
                        "not an LLM server)")  # fmt: skip


def _add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """The share of requests that fail, per kind of fault."""
    faults = parser.add_argument_group("faults (shares of requests, seeded by --seed)")
    for kind in FAULT_KINDS:
        faults.add_argument(f"--fault-{kind}", type=float, default=0.0, metavar="RATE",
                            help=f"{_FAULT_HELP[kind]} (0)")  # fmt: skip
    faults.add_argument("--fault-rate", type=float, default=None, metavar="RATE",
                        help="total fault rate spread evenly over the five kinds")  # fmt: skip
    faults.add_argument("--hang-s", type=float, default=600.0,
                        help="how long a hang lasts at most, seconds (600)")  # fmt: skip


def config_from_arguments(args: argparse.Namespace) -> SimConfig:
    keys = list(args.require_key)
    for name in args.api_key_env:
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"sim: --api-key-env {name}: the environment variable is not set")
        keys.append(value)
    fault_rates = {f"fault_{kind}": getattr(args, f"fault_{kind}") for kind in FAULT_KINDS}
    if args.fault_rate is not None:
        fault_rates = {name: args.fault_rate / len(FAULT_KINDS) for name in fault_rates}
    base_s = args.latency if args.latency is not None else args.latency_base_ms / 1000
    return SimConfig(
        tasks=tuple(args.task),
        seed=args.seed,
        task_seed=args.task_seed,
        model=args.model,
        good_share=args.good_share,
        good_quality=args.good_quality,
        mediocre_quality=args.mediocre_quality,
        bad_quality=args.bad_quality,
        variant_noise=args.variant_noise,
        reflect_gain=args.reflect_gain,
        reflect_noise=args.reflect_noise,
        difficulty_spread=args.difficulty_spread,
        latency_base_s=base_s,
        latency_per_token_s=args.latency_per_token_ms / 1000,
        latency_per_prompt_token_s=args.latency_per_prompt_token_ms / 1000,
        prefix_cache_tokens=args.prefix_cache_tokens,
        cached_token_cost=args.cached_token_cost,
        latency_jitter=args.latency_jitter,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        per_key_limits=args.per_key_limits,
        api_keys=tuple(keys),
        quota_requests=args.quota_requests,
        hang_s=args.hang_s,
        debug_routes=args.debug_routes,
        choices=args.choices,
        reasoning=args.reasoning,
        not_json=args.not_json,
        chatty=args.chatty,
        **fault_rates,
    )


async def _serve(config: SimConfig, host: str, port: int) -> None:
    stop = stop_on_signals()
    async with serve_sim(config, host=host, port=port) as server:
        tasks = ", ".join(state.task.name for state in server.world.tasks) if server.world else ""
        seed = config.seed if config.task_seed is None else config.task_seed
        print(
            f"ape-engine sim: simulated LLM server (a simulator, not a real model), model "
            f"{config.model}, tasks: {tasks} (seed {seed}; the numeric ones answer any seed's "
            f"inputs); listening on {server.base_url}",
            flush=True,
        )
        await stop.wait()


def main(args: argparse.Namespace) -> int:
    config = config_from_arguments(args)
    asyncio.run(_serve(config, args.host, args.port))
    return 0
