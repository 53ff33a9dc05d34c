"""Behaviours of real servers the simulator can act out, so the engine's adaptations are tested
against what those servers document, not against a server that takes everything.

- ``choices="refuse"``: ``n`` > 1 is a 400, as Anthropic's OpenAI-compatible endpoint and
  llama.cpp's ``llama-server`` answer; ``choices="ignore"``: one choice comes back whatever ``n``
  asks, as llama-cpp-python's server does.
- ``reasoning``: OpenAI's reasoning models (o1, o3, ...): ``max_tokens`` is refused ("Use
  'max_completion_tokens' instead"), so are a temperature other than the default 1 and ``stop``;
  the errors carry OpenAI's ``unsupported_parameter`` / ``unsupported_value`` codes and ``param``.
- ``not_json``: every route answers 200 with an HTML page, as a web server that is not an LLM
  server does at a wrong base URL.
"""

from __future__ import annotations

from typing import Any, Literal

from engine.serving.protocol import ApiError

__all__ = ["CHOICES", "NOT_JSON_PAGE", "Choices", "apply_quirks"]

Choices = Literal["many", "refuse", "ignore"]
CHOICES: tuple[Choices, ...] = ("many", "refuse", "ignore")

NOT_JSON_PAGE = (
    b"<!doctype html><html><head><title>Welcome</title></head>"
    b"<body><h1>It works!</h1><p>This is a web server, not an API.</p></body></html>"
)


def _unsupported(param: str, message: str, code: str = "unsupported_parameter") -> ApiError:
    return ApiError(400, message, code=code, param=param)


def _reasoning(body: dict[str, Any]) -> None:
    if "max_tokens" in body:
        raise _unsupported(
            "max_tokens",
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
        )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise _unsupported(
            "temperature",
            f"Unsupported value: 'temperature' does not support {temperature} with this "
            "model. Only the default (1) value is supported.",
            "unsupported_value",
        )
    if body.get("stop") is not None:
        raise _unsupported(
            "stop", "Unsupported parameter: 'stop' is not supported with this model."
        )


def apply_quirks(body: Any, *, choices: Choices, reasoning: bool, chat: bool) -> Any:
    """The request body as the server reads it, or an `ApiError` as the real server answers."""
    if not isinstance(body, dict):
        return body
    if reasoning and chat:
        _reasoning(body)
    n = body.get("n", 1)
    if isinstance(n, int) and n > 1:
        if choices == "refuse":
            raise ApiError(400, "Only one completion choice is allowed", param="n")
        if choices == "ignore":
            body = {**body, "n": 1}
    return body
