"""The simulated world: a `Backend` whose truth is known.

Every instruction has a latent quality q in [0, 1] on a task, drawn from a mixture (most
mediocre, a few good; off-task proposals bad; the task's human instruction good) seeded by its
normalised text and the server seed; an instruction the world wrote from others (a variant, a
reflection, a merge) gets a quality that follows from its parents' (`engine.sim.derived`). Every example e has a difficulty b_e shared by all instructions, and an
instruction answers e correctly with probability p(q, e) = sigmoid(a_q - b_e), where a_q is
solved so that the mean of p over the task's examples is exactly q: the empirical accuracy of
an instruction converges to its quality, and hard examples are hard for every instruction.
Whether an answer is right is decided by a uniform draw hashed from (seed, instruction,
example, choice): the same question always gets the same answer. Echoed log-probabilities of
an answer have exp(mean token log-prob) = p when the answer is right, less when it is wrong.

Requests are recognised by the templates of docs/design.md, "What APE is": the forward proposal template
(completions or chat), the variant, reflection and merge templates, and the scoring template
``instruction + "\n\nInput: " + x + "\nOutput:"``; a chat whose scoring demos came as earlier
turns is read as its first user message's instruction with the last user message's input. A
judge prompt (`engine.sim.judge`) gets a verdict by exact match.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.serving.protocol import Generation, GenerationRequest, Scored
from engine.sim.chat import Question, read_question, talks, with_earlier_turns
from engine.sim.config import SimConfig
from engine.sim.derived import Derivation, Derivations
from engine.sim.judge import judge_reply
from engine.sim.phrasing import (
    OFF_TASK,
    cores_of,
    instruction_key,
)
from engine.sim.reflection import (
    MERGE_MARK,
    REFLECT_MARK,
)
from engine.sim.solvers import SOLVERS
from engine.sim.tokens import answer_tokens, context_token, tokenize, truncate
from engine.sim.writing import GENERIC_ANSWER, Writer
from engine.task.metrics import normalise
from engine.task.types import Task

__all__ = ["World"]

_VARIANT_MARK = "generate a variation of the following instruction"
_FORWARD_MARKS = ("input-output pairs", "the instruction was", "reply with the instruction")
_STOPWORDS = frozenset(
    ("a", "an", "the", "of", "to", "and", "or", "with", "its", "it", "is", "in", "on", "for",
     "each", "given", "answer", "write", "input", "output")
)  # fmt: skip
UNKNOWN_INPUT_ANSWER = "I do not know."
_OFF_TASK_KEYS = frozenset(instruction_key(text) for text in OFF_TASK)
_KEY_CACHE_LIMIT = 100_000


def _sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    z = math.exp(value)
    return z / (1.0 + z)


@dataclass(slots=True)
class _TaskState:
    task: Task
    answers: list[tuple[str, ...]]
    normalised: list[frozenset[str]]
    difficulty: np.ndarray
    human_key: str
    words: frozenset[str]
    cores: list[str]

    @classmethod
    def of(cls, task: Task, config: SimConfig) -> _TaskState:
        """A task as the world knows it: its answers, and its examples' difficulties drawn
        from the seed and the task's name."""
        rng = np.random.default_rng(
            [config.seed, int.from_bytes(hashlib.blake2b(task.name.encode()).digest()[:4])]
        )
        examples = (*task.examples, *(task.test_examples or ()))
        words = " ".join(filter(None, (task.human_instruction, task.description)))
        return cls(
            task=task,
            answers=[e.outputs for e in examples],
            normalised=[frozenset(normalise(o) for o in e.outputs) for e in examples],
            difficulty=rng.normal(0.0, config.difficulty_spread, len(examples)),
            human_key=instruction_key(task.human_instruction or ""),
            words=frozenset(instruction_key(words).split()) - _STOPWORDS,
            cores=cores_of(task.human_instruction, task.description),
        )


class World:
    """A `Backend` answering proposal and scoring prompts about the tasks it serves."""

    def __init__(self, tasks: Sequence[Task], config: SimConfig) -> None:
        self.config = config
        self.seed = str(config.seed)
        self.tasks: list[_TaskState] = []
        self._by_input: dict[str, list[tuple[int, int]]] = {}
        for t, task in enumerate(tasks):
            self.tasks.append(_TaskState.of(task, config))
            for e, example in enumerate((*task.examples, *(task.test_examples or ()))):
                self._by_input.setdefault(example.input.strip(), []).append((t, e))
        # numeric built-in tasks answer any input of their form (another seed's examples too)
        self._solvers = [
            (t, SOLVERS[state.task.name])
            for t, state in enumerate(self.tasks)
            if state.task.source == f"builtin:{state.task.name}" and state.task.name in SOLVERS
        ]
        self._learned_difficulty: dict[tuple[int, int], float] = {}
        self._keys: dict[str, str] = {}
        self._qualities: dict[tuple[int, str], float] = {}
        self._offsets: dict[tuple[int, str], float] = {}
        self.derivations = Derivations(config, self._unit)
        self.origin: dict[str, int] = {}
        self._writer = Writer(self)

    # -- Backend --------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)

    async def generate(self, request: GenerationRequest) -> list[Generation]:
        return self.generate_now(request)

    async def prompt_logprobs(self, prompt: str, top: int) -> list[Scored]:
        return self.score_prompt(prompt)

    # -- truth ----------------------------------------------------------------------------------

    def key(self, instruction: str) -> str:
        key = self._keys.get(instruction)
        if key is None:
            if len(self._keys) > _KEY_CACHE_LIMIT:
                self._keys.clear()
            key = self._keys[instruction] = instruction_key(instruction)
        return key

    def task_index(self, name: str | None, instruction_key_: str = "") -> int:
        """The task called `name`, else the one the instruction belongs to."""
        if name is not None:
            for t, state in enumerate(self.tasks):
                if state.task.name == name:
                    return t
            raise KeyError(name)
        return self._task_of(instruction_key_)

    def quality(self, instruction: str, task: str | None = None) -> float:
        """The latent quality of `instruction` on `task` (default: the task it belongs to)."""
        key = self.key(instruction)
        return self._quality(key, self.task_index(task, key))

    def p_correct(self, instruction: str, task: int, example: int) -> float:
        return self._p(self.key(instruction), task, example)

    def _unit(self, *parts: object) -> float:
        text = "\x1f".join((self.seed, *map(str, parts)))
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        return (int.from_bytes(digest, "big") + 0.5) / 2**64

    def _draw(self, low_high: tuple[float, float], *parts: object) -> float:
        low, high = low_high
        return low + (high - low) * self._unit(*parts)

    def _quality(self, key: str, t: int) -> float:
        cached = self._qualities.get((t, key))
        if cached is not None:
            return cached
        config = self.config
        name = self.tasks[t].task.name if self.tasks else ""
        derived = self.derivations.quality(key, name, lambda parent: self._quality(parent, t))
        if derived is not None:
            quality = derived
        elif self.tasks and key == self.tasks[t].human_key:
            quality = self._draw(config.good_quality, "human", name, key)
        elif key in _OFF_TASK_KEYS:
            quality = self._draw(config.bad_quality, "bad", name, key)
        elif self._unit("mixture", name, key) < config.good_share:
            quality = self._draw(config.good_quality, "good", name, key)
        else:
            quality = self._draw(config.mediocre_quality, "mediocre", name, key)
        self._qualities[(t, key)] = quality
        self.derivations.fixed.add(key)
        return quality

    def _offset(self, key: str, t: int) -> float:
        """a_q: the shift that makes the mean over the task's examples of p equal q."""
        cached = self._offsets.get((t, key))
        if cached is not None:
            return cached
        quality = min(1 - 1e-9, max(1e-9, self._quality(key, t)))
        difficulty = self.tasks[t].difficulty
        low, high = -60.0, 60.0
        for _ in range(60):
            middle = (low + high) / 2
            mean = float(np.mean(1.0 / (1.0 + np.exp(difficulty - middle))))
            if mean < quality:
                low = middle
            else:
                high = middle
        offset = self._offsets[(t, key)] = (low + high) / 2
        return offset

    def _p(self, key: str, t: int, e: int) -> float:
        difficulty = self.tasks[t].difficulty
        b = float(difficulty[e]) if e < len(difficulty) else self._learned_difficulty[(t, e)]
        return _sigmoid(self._offset(key, t) - b)

    def examples_of(self, text: str) -> list[tuple[int, int]]:
        """(task, example) pairs whose input is `text`; an input a numeric built-in task can
        answer is learned on first sight, with a difficulty drawn as the task's are."""
        found = self._by_input.get(text)
        if found is not None or not self._solvers:
            return found or []
        learned = []
        for t, solve in self._solvers:
            output = solve(text)
            if output is None:
                continue
            state = self.tasks[t]
            e = len(state.answers)
            state.answers.append((output,))
            state.normalised.append(frozenset({normalise(output)}))
            unit = min(1 - 1e-9, max(1e-9, self._unit("difficulty", t, text)))
            spread = self.config.difficulty_spread
            self._learned_difficulty[(t, e)] = spread * float(np.log(unit / (1 - unit))) * 0.55
            learned.append((t, e))
        if learned:
            self._by_input[text] = learned
        return learned

    def register_variant(self, child: str, parent: str) -> None:
        """Remember that `child` was written as a variant of `parent` (first writer wins; a text
        whose quality is already known keeps it)."""
        self.register_derived(child, "variant", (parent,))

    def register_derived(
        self, child: str, kind: str, parents: tuple[str, ...], shown: int = 0
    ) -> None:
        """Remember that `child` was written from `parents` as a variant, a reflection that saw
        `shown` wrong answers, or a merge (first writer wins; a known quality stays)."""
        child_key = self.key(child)
        keys = tuple(self.key(parent) for parent in parents)
        derivation = Derivation(kind, keys, shown)  # type: ignore[arg-type]
        if self.derivations.register(child_key, derivation) and keys[0] in self.origin:
            self.origin.setdefault(child_key, self.origin[keys[0]])

    def _task_of(self, key: str) -> int:
        origin = self.origin.get(key)
        if origin is not None:
            return origin
        if len(self.tasks) <= 1:
            return 0
        words = set(key.split())
        overlaps = [len(words & state.words) for state in self.tasks]
        return max(range(len(overlaps)), key=lambda t: (overlaps[t], -t))

    # -- reading prompts ------------------------------------------------------------------------

    def _question(self, prompt: str) -> Question | None:
        return read_question(prompt, self._by_input)

    def _locate(self, question: Question) -> tuple[str, int, int] | None:
        found = self.examples_of(question.input.strip())
        if not found:
            return None
        key = self.key(question.instruction)
        if len(found) == 1:
            t, e = found[0]
        else:
            preferred = self._task_of(key)
            t, e = next(((t, e) for t, e in found if t == preferred), found[0])
        return key, t, e

    def _wrong_answer(self, key: str, t: int, e: int, choice: int) -> str:
        state = self.tasks[t]
        right = state.answers[e][0] if state.answers[e] else ""
        accepted = state.normalised[e]
        unit = self._unit("wrong", key, t, e, choice)
        if right.lstrip("-").isdigit():
            value = int(right) + (1 + int(unit * 10)) * (1 if unit < 0.5 else -1)
            return str(value)
        count = len(state.answers)
        start = int(unit * count)
        for step in range(count):
            other = state.answers[(start + step) % count]
            if other and normalise(other[0]) not in accepted:
                return other[0]
        return right[::-1] + "?" if right else "?"

    # -- answering ------------------------------------------------------------------------------

    def generate_now(self, request: GenerationRequest) -> list[Generation]:
        prompt = with_earlier_turns(request)
        verdict = judge_reply(prompt)
        if verdict is not None:
            return [self._finish(request, verdict) for _ in range(request.n)]
        lowered = prompt[:400].lower()
        if request.suffix and "Input:" in request.suffix:
            texts = self._writer.proposals(request)  # fill in the middle: insert proposals
        elif lowered.startswith((REFLECT_MARK, MERGE_MARK)):
            texts = self._writer.reflections(request)
        elif _VARIANT_MARK in lowered:
            texts = self._writer.variants(request)
        elif ("Input:" in prompt or "\nOutput: " in prompt) and (
            _FORWARD_MARKS[0] in lowered
            or prompt.rstrip().lower().endswith(_FORWARD_MARKS[1])
            or _FORWARD_MARKS[2] in prompt[-120:].lower()
        ):
            texts = self._writer.proposals(request)
        else:
            question = self._question(prompt)
            if question is not None:
                return self._answers(request, question)
            texts = [GENERIC_ANSWER] * request.n
        return [self._finish(request, text) for text in texts]

    def _finish(
        self, request: GenerationRequest, text: str, mean_logprob: float | None = None
    ) -> Generation:
        text, reason = truncate(text, request.max_tokens, request.stop)
        if request.logprobs is None:
            return Generation(text, reason)
        tokens = tokenize(text)
        if mean_logprob is None:
            scored = tuple(context_token(token, self._unit) for token in tokens)
        else:
            scored = answer_tokens(tokens, mean_logprob, self._unit)
        return Generation(text, reason, scored)

    def _answers(self, request: GenerationRequest, question: Question) -> list[Generation]:
        located = self._locate(question)
        if located is None:
            return [self._finish(request, UNKNOWN_INPUT_ANSWER)] * request.n
        key, t, e = located
        p = self._p(key, t, e)
        lead = " " if request.api == "completions" else ""
        tail = "\n" if request.api == "completions" else ""
        if self.config.chatty and talks(request):
            lead, tail = f"The output for {question.input.strip()!r} is ", "."
        state = self.tasks[t]
        generations = []
        for choice in range(request.n):
            draw = 0 if request.temperature == 0 else choice
            if self._unit("answer", key, t, e, draw) < p:
                answer, mean = state.answers[e][0] if state.answers[e] else "", math.log(p)
            else:
                answer = self._wrong_answer(key, t, e, draw)
                mean = math.log(max(1.0 - p, 1e-12))
            generations.append(self._finish(request, lead + answer + tail, max(mean, -30.0)))
        return generations

    # -- log-probabilities ----------------------------------------------------------------------

    def score_prompt(self, prompt: str) -> list[Scored]:
        """Echo log-probs: context tokens get plausible values; the answer after "Output:" in
        a scoring prompt gets exp(mean) = p when it is accepted, (1 - p) / 4 when it is not."""
        tokens = tokenize(prompt)
        question = self._question(prompt)
        located = self._locate(question) if question is not None else None
        if question is None or located is None or not question.tail.strip():
            return [context_token(token, self._unit) for token in tokens]
        key, t, e = located
        p = self._p(key, t, e)
        answer = normalise(question.tail)
        accepted = answer in self.tasks[t].normalised[e]
        mean = math.log(p) if accepted else math.log(max(1.0 - p, 1e-12) / 4)
        mean = max(mean, -30.0)
        offset = 0
        head: list[Scored] = []
        tail: list[str] = []
        for token in tokens:
            if offset >= question.tail_start:
                tail.append(token)
            else:
                head.append(context_token(token, self._unit))
            offset += len(token)
        return head + list(answer_tokens(tail, mean, self._unit))
