"""Cleaning what a proposal model wrote into one instruction, and removing duplicates.

A model's answer is rarely the bare instruction: it adds a lead-in ("The instruction was:",
"Sure, here is the instruction:"), quotes, a second paragraph, the next demo ("Input: ...").
`normalise_instruction` keeps the first paragraph as one line without those (or, when the answer
holds a line in the asked-for form ``Instruction: ...``, that line); `imperative` also turns
the continuation of the completions template ("to add the two numbers") into an instruction
("Add the two numbers"). `judge_proposal` says why an answer is not an instruction: empty, a
demo, too long, too short, a question, or text about the task rather than an instruction for
it ("To determine the instruction, I'll analyze each pair:", "Provide an instruction."). `Deduplicator` drops exact copies (same words, case and
punctuation aside) and near copies: token-set Jaccard similarity at or above a threshold
(Broder 1997, "On the resemblance and containment of documents").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_SIMILARITY",
    "REJECTIONS",
    "Deduplicator",
    "Verdict",
    "clean_proposal",
    "instruction_key",
    "jaccard",
    "judge_proposal",
    "normalise_instruction",
]

DEFAULT_MAX_CHARS = 400
DEFAULT_SIMILARITY = 0.9
_QUOTES = "\"'`“”‘’«»"
_LEAD_INS = re.compile(
    r"^(?:(?:sure|okay|ok|certainly|of course)\b[,!.:]?\s*)?"
    r"(?:(?:here\s+is|here's|this\s+is)\s+(?:the|an|my)\s+(?:new\s+|revised\s+)?"
    r"(?:instruction|variation|answer)\s*[:\-]?\s*)?"
    r"(?:(?:the\s+)?(?:new\s+|revised\s+)?instruction(?:\s+(?:was|is))?\s*[:\-]\s*"
    r"|(?:the\s+)?(?:new\s+|revised\s+)?instruction\s+(?:was|is)\s+)?",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^(?:output|answer|variation)\s*:\s*", re.IGNORECASE)
_DEMO_START = re.compile(r"(?<=[.!?\"'])\s+(?:Input|Output)\s*:")
_NOT_WORD = re.compile(r"[^\w\s]+")
_FORMED = re.compile(r"^\s*\**\s*(?:the\s+)?(?:new\s+)?instruction\s*\**\s*:\s*\**\s*(\S.*)$",
                     re.IGNORECASE | re.MULTILINE)  # fmt: skip
# text about the task: the model reasoning aloud, addressing the asker, or asking for more
_META_START = re.compile(
    r"^(?:to\s+(?:determine|find|figure|identify|solve|answer|understand)|let'?s|let\s+me|"
    r"i\s*(?:'ll|'m|'d|\s+will|\s+would|\s+think|\s+need|\s+can|\s+am|\s+have)\b|"
    r"based\s+on|looking\s+at|it\s+(?:seems|looks|appears)|here\s+(?:is|are)|"
    r"you\s+(?:gave|want|asked|have|provided)|in\s+this\s+task|as\s+an\s+ai|the\s+pairs?|"
    r"the\s+(?:inputs?|outputs?)\s+(?:are|is|were|was|show)|each\s+pair|about|an?\s+example\s+of)\b",
    re.IGNORECASE,
)
_META_WORDS = re.compile(
    r"\b(?:instructions?|input-output|friend|pairs?\s+above|the\s+examples?\s+(?:show|above))\b",
    re.IGNORECASE,
)
#: why a proposal model's answer was not kept as an instruction (``no_instruction``: a
#: reflection's or a merge's answer that holds none, `engine.propose.reflection`)
REJECTIONS = (
    "empty",
    "demo",
    "too_long",
    "too_short",
    "question",
    "about_the_task",
    "no_instruction",
)


def _strip_quotes(text: str) -> str:
    """Remove quotes that wrap the whole text, and an unmatched quote at either end."""
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    if text[:1] in _QUOTES and not any(q in text[1:] for q in _QUOTES):
        text = text[1:].strip()
    if text[-1:] in _QUOTES and not any(q in text[:-1] for q in _QUOTES):
        text = text[:-1].strip()
    return text


def normalise_instruction(
    text: str, *, max_chars: int | None = DEFAULT_MAX_CHARS, imperative: bool = False
) -> str:
    """One paragraph on one line, without lead-in, quotes or a trailing demo; '' when nothing
    usable is left. `imperative` drops the leading "to " of a forward-template continuation
    and capitalises the first letter. Longer than `max_chars` (after cleaning): ''."""
    formed = _FORMED.search(text)
    if formed is not None:  # the asked-for form, anywhere in a longer answer
        text = formed.group(1).strip().strip("*").strip()
    # a completions model continuing "The instruction was" often starts with ": " or "- "
    text = re.sub(r"^[\s:;,\-\u2013\u2014]+", "", text)
    if not text:
        return ""
    paragraph = re.split(r"\n\s*\n", text, maxsplit=1)[0]
    if re.match(r"^input\s*:", paragraph.strip(), re.IGNORECASE):
        return ""  # a demo, not an instruction
    lines = []
    for number, line in enumerate(paragraph.splitlines()):
        if number == 0:
            line = _LABEL.sub("", line.strip(), count=1)
        if re.match(r"^\s*(?:input|output)\s*:", line, re.IGNORECASE):
            break  # the next demo, not the instruction
        lines.append(line.strip())
    text = " ".join(" ".join(lines).split())
    for _ in range(2):  # a quoted lead-in, or a lead-in around a quoted text
        text = _strip_quotes(text)
        text = _LEAD_INS.sub("", text, count=1).strip()
        text = _LABEL.sub("", text, count=1).strip()
    text = _strip_quotes(text)
    cut = _DEMO_START.search(text)
    if cut is not None:
        text = _strip_quotes(text[: cut.start()])
    if imperative:
        if text[:3].lower() == "to ":
            text = text[3:].lstrip()
        text = text[:1].upper() + text[1:]
    text = text.strip()
    if max_chars is not None and len(text) > max_chars:
        return ""
    return text


def instruction_key(text: str) -> str:
    """The exact-duplicate key: lower case, no punctuation, no leading "to "."""
    key = " ".join(_NOT_WORD.sub(" ", text.lower()).split())
    return key[3:] if key.startswith("to ") else key


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def judge_proposal(text: str, *, max_chars: int | None, imperative: bool) -> tuple[str, str]:
    """(instruction, "") for an instruction worth scoring, else ("", reason), the reason one
    of `REJECTIONS`."""
    if not text.strip():
        return "", "empty"
    instruction = normalise_instruction(text, max_chars=None, imperative=imperative)
    if not instruction:
        return "", "demo" if re.search(r"(?im)^\s*input\s*:", text) else "empty"
    if max_chars is not None and len(instruction) > max_chars:
        return "", "too_long"
    if len(instruction_key(instruction).split()) < 2:
        return "", "too_short"
    if _META_START.search(instruction) or _META_WORDS.search(instruction):
        return "", "about_the_task"
    if instruction.rstrip().endswith("?"):
        return "", "question"
    return instruction, ""


def clean_proposal(text: str, *, max_chars: int | None, imperative: bool) -> str:
    """An instruction worth scoring, or '' (see `judge_proposal` for why not)."""
    return judge_proposal(text, max_chars=max_chars, imperative=imperative)[0]


@dataclass(frozen=True, slots=True)
class Verdict:
    new: bool
    near: str | None = None  # the kept instruction it copies (None: new, or an exact copy)


class Deduplicator:
    """Remembers the instructions kept so far; says whether a new one copies one of them."""

    def __init__(self, similarity: float = DEFAULT_SIMILARITY, known: Iterable[str] = ()) -> None:
        if not 0 < similarity <= 1:
            raise ValueError(f"similarity must be in (0, 1], not {similarity}")
        self.similarity = similarity
        self._keys: set[str] = set()
        self._kept: list[tuple[frozenset[str], str]] = []
        for text in known:
            self.add(text)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, text: str) -> None:
        key = instruction_key(text)
        if key not in self._keys:
            self._keys.add(key)
            self._kept.append((frozenset(key.split()), text))

    def check(self, text: str) -> Verdict:
        """Whether `text` is new; a new one is remembered."""
        key = instruction_key(text)
        if key in self._keys:
            return Verdict(False)
        tokens = frozenset(key.split())
        for kept_tokens, kept in self._kept:
            if jaccard(tokens, kept_tokens) >= self.similarity:
                return Verdict(False, kept)
        self._keys.add(key)
        self._kept.append((tokens, text))
        return Verdict(True)
