"""The OpenAI-compatible HTTP server into which backends plug: the wire protocol (parsing,
validation, error and answer shapes), the `Backend` a server answers with, and the server-side
rate limits. The simulated world (`engine.sim`) and a local model (`engine.local`) are backends.
"""

from engine.serving.protocol import ApiError, Backend, Generation, GenerationRequest, Scored
from engine.serving.server import OpenAIServer, listening, serve
from engine.serving.settings import FAULT_KINDS, ServerSettings

__all__ = [
    "FAULT_KINDS",
    "ApiError",
    "Backend",
    "Generation",
    "GenerationRequest",
    "OpenAIServer",
    "Scored",
    "ServerSettings",
    "listening",
    "serve",
]
