"""The async LLM client layer: limiter, retries, endpoints, capabilities (docs/design.md, "Throughput").

Typical use::

    config = EndpointConfig(name="target", base_url="http://127.0.0.1:8000/v1", model="sim-1",
                            requests_per_minute=6000, tokens_per_minute=600_000, concurrency=256)
    async with LLMClient(config) as client:
        await client.require(Capability.PROMPT_LOGPROBS)
        answer = await client.chat([{"role": "user", "content": "..."}], max_tokens=16)

The rooms, each importing only the ones below it (a contract in pyproject.toml)::

    pool/        several endpoints for one role: routing, failover, a breaker per endpoint
    client.py    LLMClient, one endpoint: a facade over the parts below
    calls/       the path every call takes, its counters, the scoring call
    probing/     what an endpoint can do; the preflight before a study's first call
    protocol/    bodies, answers, dialects, error classification  |  transport/  HTTP
    pacing/      rate limiters, buckets, AIMD, rate-limit headers, send gate, clock
    endpoint.py  how to reach an endpoint;  retry.py  the one retry layer;  errors.py  its kinds
"""

from engine.llm.calls.stats import StatsSnapshot
from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig, Secret, load_api_key
from engine.llm.errors import (
    ConnectionFailedError,
    EndpointTimeoutError,
    LLMError,
    MalformedResponseError,
    QuotaExceededError,
    RateLimitError,
    RequestRejectedError,
    ServerError,
)
from engine.llm.pacing.clock import Clock, FakeClock, LoopClock
from engine.llm.pacing.headers import BucketHint, parse_rate_limit_headers, parse_retry_after_s
from engine.llm.pacing.limiter import UNSET, AimdSettings, LimiterReading, Permit, RateLimiter
from engine.llm.pool.endpoint_pool import EndpointPool, EndpointReading
from engine.llm.probing.capabilities import (
    Capabilities,
    Capability,
    probe_capabilities,
    require_capability,
)
from engine.llm.protocol.classification import classify_response
from engine.llm.protocol.request import estimate_tokens
from engine.llm.protocol.results import Completion, ContinuationLogprob, TokenLogprobs, Usage
from engine.llm.retry import RetryPolicy, call_with_retries
from engine.llm.transport.aiohttp import AiohttpTransport
from engine.llm.transport.interface import RawResponse, Transport
from engine.llm.transport.lean import LeanTransport

__all__ = [
    "UNSET",
    "AimdSettings",
    "AiohttpTransport",
    "BucketHint",
    "Capabilities",
    "Capability",
    "Clock",
    "Completion",
    "ConnectionFailedError",
    "ContinuationLogprob",
    "EndpointConfig",
    "EndpointPool",
    "EndpointReading",
    "EndpointTimeoutError",
    "FakeClock",
    "LLMClient",
    "LLMError",
    "LeanTransport",
    "LimiterReading",
    "LoopClock",
    "MalformedResponseError",
    "Permit",
    "QuotaExceededError",
    "RateLimitError",
    "RateLimiter",
    "RawResponse",
    "RequestRejectedError",
    "RetryPolicy",
    "Secret",
    "ServerError",
    "StatsSnapshot",
    "TokenLogprobs",
    "Transport",
    "Usage",
    "call_with_retries",
    "classify_response",
    "estimate_tokens",
    "load_api_key",
    "parse_rate_limit_headers",
    "parse_retry_after_s",
    "probe_capabilities",
    "require_capability",
]
