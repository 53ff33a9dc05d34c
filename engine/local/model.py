"""A GGUF model run by llama.cpp (``llama-cpp-python``), as synchronous calls on one instance.

What it adds to llama.cpp's own Python server, which gets both wrong or slow:
- Prompt-token log-probabilities from the logits of one evaluation (``logits_all=True``): row
  ``r`` of the logits predicts token ``r + 1``, so the model's BOS token (when its vocabulary adds
  one) gives the first text token a context, and a model without BOS (Qwen2.5, SmolLM2) leaves
  only the first token unscored -- never a shift by one. Log-softmax with numpy over those rows
  only; alternatives by `numpy.argpartition`, never a Python sort of the vocabulary.
- Tokens that concatenate to the text exactly (`split_text`), so ``text_offset`` is right even
  when a token holds half of a multi-byte character.
- The key-value cache is reused for the longest common prefix with the previous call, which is
  what scoring many examples under one instruction shares.
- Chat prompts rendered with the chat template of the GGUF metadata (``tokenizer.chat_template``).

llama.cpp is not re-entrant: every method takes this instance's lock. `engine.local.backend` runs
them off the event loop, one at a time. Reference: llama.cpp ``llama_decode`` / ``llama_get_logits``
and llama-cpp-python 0.3 ``Llama.eval`` / ``Llama.generate``.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.local.runnable import check_runnable
from engine.serving.protocol import ApiError, Generation, GenerationRequest, Scored

__all__ = ["LocalModel", "log_softmax_rows", "split_text"]

INSTALL_HINT = "pip install 'ape-engine[local]' (llama-cpp-python==0.3.36), or `make install`"
# llama.cpp's own sampling defaults (its server's too): with temperature > 0, a tiny model
# sampled from the whole vocabulary writes noise; the request's top_p is not read
_SAMPLING = {"top_k": 40, "top_p": 0.95, "min_p": 0.05}
_FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def split_text(text: str, piece_lengths: Sequence[int]) -> list[str]:
    """`text` cut into consecutive pieces of the given UTF-8 byte lengths. A cut inside a
    multi-byte character moves to the character's end (the piece after it may be ``""``); the
    last piece takes whatever remains, so ``"".join(split_text(t, ls)) == t`` always holds."""
    data = text.encode()
    pieces: list[str] = []
    start = 0
    end_target = 0
    last = len(piece_lengths) - 1
    for index, length in enumerate(piece_lengths):
        end_target += length
        end = len(data) if index == last else max(start, min(end_target, len(data)))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end += 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces


def log_softmax_rows(
    logits: np.ndarray[Any, Any], targets: Sequence[int], top: int
) -> tuple[np.ndarray[Any, Any], list[list[tuple[int, float]]]]:
    """For each row of `logits` (float32, rows x vocabulary): the log-probability of its target
    token, and the `top` most likely tokens with their log-probabilities (best first)."""
    rows = logits.shape[0]
    if rows == 0:
        return np.zeros(0, dtype=np.float64), []
    peak = logits.max(axis=1, keepdims=True)
    shifted = logits - peak
    log_norm = np.log(np.exp(shifted, dtype=np.float64).sum(axis=1))
    picked = shifted[np.arange(rows), np.asarray(targets, dtype=np.intp)].astype(np.float64)
    values = picked - log_norm
    alternatives: list[list[tuple[int, float]]] = [[] for _ in range(rows)]
    if top > 0:
        k = min(top, logits.shape[1])
        best = np.argpartition(shifted, -k, axis=1)[:, -k:]
        best_values = np.take_along_axis(shifted, best, axis=1).astype(np.float64)
        order = np.argsort(-best_values, axis=1)
        best = np.take_along_axis(best, order, axis=1)
        best_values = np.take_along_axis(best_values, order, axis=1) - log_norm[:, None]
        alternatives = [
            [(int(token), float(value)) for token, value in zip(ids, vals, strict=True)]
            for ids, vals in zip(best, best_values, strict=True)
        ]
    return values, alternatives


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as error:
        raise ConfigError(
            f"local model: llama-cpp-python is not installed ({error}); {INSTALL_HINT}"
        ) from None
    return llama_cpp


class LocalModel:
    """One llama.cpp model instance. Every public method is serialised by the instance's lock."""

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int | None = None,
        context: int = 2048,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        check_runnable(self.path)  # a build this CPU cannot run dies by SIGILL in a child
        llama_cpp = _import_llama()
        self.name = name or self.path.stem
        # prompt tokens asked for, and those evaluated (the rest came from the key-value cache)
        self.tokens_asked = 0
        self.tokens_evaluated = 0
        self._lib = llama_cpp
        self._lock = threading.Lock()
        # llama.cpp's threads spin while they wait for each other: more threads than idle cores
        # costs ten times the time. Half the logical cores (the physical ones, usually), for the
        # prompt as for generation (llama-cpp-python would take every core for prompts).
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=context,
                n_batch=min(512, context),
                n_threads=self.threads,
                n_threads_batch=self.threads,
                logits_all=True,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as error:
            raise ConfigError(
                f"local model {str(self.path)!r}: llama.cpp cannot load it: {error}"
            ) from None
        llama = self._llama
        self.context = int(llama.n_ctx())
        self.vocabulary = int(llama.n_vocab())
        internal = llama._model
        bos = int(internal.token_bos())
        self.bos: int | None = bos if bos >= 0 and bool(internal.add_bos_token()) else None
        self._vocab = internal.vocab
        self.metadata: dict[str, str] = dict(llama.metadata)
        eos = int(internal.token_eos())
        eos_text = internal.token_get_text(eos) if eos >= 0 else ""
        bos_text = internal.token_get_text(bos) if bos >= 0 else ""
        template = self.metadata.get("tokenizer.chat_template")
        self.chat_template_source = "gguf" if template else "fallback"
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._formatter = Jinja2ChatFormatter(
            template=template or _FALLBACK_TEMPLATE, eos_token=eos_text, bos_token=bos_text
        )
        self._chat_stop = (eos_text,) if eos_text else ()
        self._piece_cache: dict[int, bytes] = {}
        # the first decode of each batch shape allocates llama.cpp's compute graph: do it now,
        # not in the first request
        self.prompt_logprobs("Warm up: the first call of a model is slower than the rest.", 0)
        self._llama.reset()

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._llama.close()

    # -- tokens ---------------------------------------------------------------------------------

    def _ids(self, text: str, *, special: bool = False) -> list[int]:
        if not text:
            return []
        ids: list[int] = self._llama.tokenize(text.encode(), add_bos=False, special=special)
        return ids

    def _piece(self, token: int) -> bytes:
        piece = self._piece_cache.get(token)
        if piece is None:
            piece = bytes(self._llama.detokenize([token]))
            self._piece_cache[token] = piece
        return piece

    def _texts(self, ids: Sequence[int], text: str) -> list[str]:
        """The pieces of `text` its token `ids` stand for, concatenating to `text` exactly."""
        lengths = [len(self._piece(token)) for token in ids]
        joined = sum(lengths)
        data_length = len(text.encode())
        if lengths and joined == data_length + 1 and self._piece(ids[0]).startswith(b" "):
            lengths[0] -= 1  # SentencePiece's leading space ("▁") that the text does not have
        return split_text(text, lengths)

    def tokenize(self, text: str) -> list[str]:
        """The model's tokens of `text` (no BOS), as text pieces that concatenate to `text`."""
        return self._texts(self._ids(text), text)

    def count_tokens(self, text: str) -> int:
        return len(self._ids(text))

    def _check_length(self, count: int, what: str) -> None:
        if count >= self.context:
            raise ApiError(
                400,
                f"This model's maximum context length is {self.context} tokens; the {what} has "
                f"{count} tokens. Shorten it, or start the local server with a larger --context.",
                code="context_length_exceeded",
                param="messages" if what == "conversation" else "prompt",
            )

    # -- evaluation -----------------------------------------------------------------------------

    def _evaluate(self, ids: Sequence[int]) -> None:
        """Make the model state hold exactly `ids`, with their logits in ``scores``, evaluating
        only what differs from the previous call's tokens."""
        llama = self._llama
        cached = llama.input_ids[: llama.n_tokens]
        common = 0
        for old, new in zip(cached, ids, strict=False):
            if old != new:
                break
            common += 1
        # llama.cpp computes a one-token batch with other kernels than a longer one (logits
        # differ by up to 0.1): the last two tokens are always evaluated together, so that no
        # value depends on what the previous call left in the cache
        common = min(common, max(len(ids) - 2, 0))
        self.tokens_asked += len(ids)
        self.tokens_evaluated += len(ids) - common
        llama.n_tokens = common
        llama._requires_eval = True  # the context's last logits are no longer the state's
        if common < len(ids):
            llama.eval(list(ids[common:]))

    def prompt_logprobs(self, prompt: str, top: int) -> list[Scored]:
        """Every token of `prompt` with its log-probability given the tokens before it (and BOS
        when the model adds one); the first token of a model without BOS has none (0.0)."""
        with self._lock:
            text_ids = self._ids(prompt)
            if not text_ids:
                return []
            ids = ([self.bos] if self.bos is not None else []) + text_ids
            self._check_length(len(ids), "prompt")
            texts = self._texts(text_ids, prompt)
            if len(ids) >= 2:
                self._evaluate(ids[:-1])
            rows = np.asarray(self._llama.scores[: len(ids) - 1])
            values, alternatives = log_softmax_rows(rows, ids[1:], top)
            offset = 1 if self.bos is not None else 0  # row of text token j is j + offset - 1
            scored: list[Scored] = []
            for j, token_text in enumerate(texts):
                row = j + offset - 1
                if row < 0:
                    scored.append(Scored(token_text, 0.0))
                    continue
                top_pairs = tuple(
                    (self._piece(token).decode(errors="replace"), value)
                    for token, value in alternatives[row]
                )
                scored.append(Scored(token_text, float(values[row]), top_pairs))
            return scored

    # -- generation -----------------------------------------------------------------------------

    def _chat_ids(self, request: GenerationRequest) -> list[int]:
        messages: list[Any] = [
            {"role": role, "content": content} for role, content in request.messages
        ]
        try:
            rendered = self._formatter(messages=messages)
        except Exception as error:  # the template's own raise_exception, or a Jinja error
            raise ApiError(
                400, f"the model's chat template rejected these messages: {error}",
                param="messages",
            ) from None  # fmt: skip
        return self._ids(rendered.prompt, special=True)

    def generate(self, request: GenerationRequest) -> list[Generation]:
        """`request.n` continuations of the prompt (chat: of the rendered conversation)."""
        if request.suffix:
            raise ApiError(
                400,
                "suffix (fill in the middle) is not supported by the local server; use the "
                "forward proposal template",
                param="suffix",
                code="unsupported_parameter",
            )
        with self._lock:
            if request.api == "chat":
                ids = self._chat_ids(request)
                stop = (*request.stop, *self._chat_stop)
                self._check_length(len(ids), "conversation")
            else:
                ids = ([self.bos] if self.bos is not None else []) + self._ids(request.prompt)
                stop = request.stop
                self._check_length(len(ids), "prompt")
            if not ids:
                raise ApiError(400, "the prompt is empty and the model has no BOS token")
            seeds = random.Random(request.seed) if request.seed is not None else random.Random()
            return [
                self._generate_one(ids, request, stop, seeds.randrange(2**31))
                for _ in range(request.n)
            ]

    def _generate_one(
        self, ids: list[int], request: GenerationRequest, stop: tuple[str, ...], seed: int
    ) -> Generation:
        llama = self._llama
        budget = min(request.max_tokens, self.context - len(ids))
        if budget <= 0:
            return Generation("", "length")
        want = request.logprobs
        llama.set_seed(seed)
        out: list[int] = []
        scored_rows: list[tuple[float, list[tuple[int, float]]]] = []
        finish = "length"
        text = ""
        self._evaluate(ids)  # generate() then samples from these logits without a re-evaluation
        generator = llama.generate(ids, temp=request.temperature, repeat_penalty=1.0, **_SAMPLING)
        try:
            for token in generator:
                if self._lib.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                if want is not None:
                    row = np.asarray(llama.scores[llama.n_tokens - 1 : llama.n_tokens])
                    values, alternatives = log_softmax_rows(row, [token], want)
                    scored_rows.append((float(values[0]), alternatives[0]))
                out.append(token)
                text = llama.detokenize(out).decode(errors="ignore")
                cut = min((text.find(s) for s in stop if s and s in text), default=-1)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
                    break
                if len(out) >= budget:
                    break
        finally:
            generator.close()
        if want is None:
            return Generation(text, finish)
        texts = split_text(text, [len(self._piece(token)) for token in out])
        tokens = tuple(
            Scored(
                piece,
                value,
                tuple((self._piece(t).decode(errors="replace"), v) for t, v in alternatives),
            )
            for piece, (value, alternatives) in zip(texts, scored_rows, strict=True)
        )
        # pieces cut off by a stop sequence are empty: drop them after the text ends
        while tokens and not tokens[-1].token:
            tokens = tokens[:-1]
        return Generation(text, finish, tokens)
