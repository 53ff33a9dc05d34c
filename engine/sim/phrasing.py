"""How the simulated proposal model words instructions, and how an instruction is recognised.

A proposal is built from what a model would pick up from the demos: the task's human
instruction or description (its "core"), a phrasing variation (prefix, synonym, suffix), and now
and then an off-task instruction, as real proposal models write. A variant rewrites its parent
with one or two such edits (iterative APE's "Generate a variation ... keeping the semantic
meaning"). `instruction_key` maps every wording of the same instruction (case, punctuation,
quotes, a leading "The instruction was" or "to") to one key: qualities are keyed by it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

__all__ = [
    "GENERIC_CORES",
    "OFF_TASK",
    "SUFFIXES",
    "completion_form",
    "instruction_key",
    "proposal_text",
    "variant_text",
]

_LEAD_IN = re.compile(r"^(?:the\s+)?(?:new\s+|revised\s+)?instruction\s+(?:was|is)\s*[:\-]?\s*")
_NOT_WORD = re.compile(r"[^\w\s]+")

OFF_TASK = (
    "Repeat the input exactly.",
    "Write a sentence that uses the input.",
    "Describe the input in a few words.",
    "Translate the input into French.",
    "Say whether the input is interesting.",
    "Write the input in capital letters.",
    "Count the characters of the input.",
    "Give an example of a similar input.",
    "Explain what the input means.",
)
GENERIC_CORES = (
    "Transform the input into the output.",
    "Follow the pattern shown in the examples.",
    "Give the output that belongs to each input.",
    "Apply the same rule as in the examples to the input.",
    "Answer with the output for the input.",
)
_PREFIXES = (
    "Please ",
    "For each input, ",
    "Read the input and ",
    "Given the input, ",
    "Look at the input and ",
    "Your task is to ",
    "You need to ",
    "Carefully ",
)
SUFFIXES = (
    " Answer with the result only.",
    " Keep the answer short.",
    " Do not explain your answer.",
    " Give a single answer.",
    " Be careful.",
    " Use the same format as the examples.",
)
_TO_PREFIXES = ("read the input and ", "look at the input and ", "carefully ")
# Phrases swapped for others that say the same, either way. A swap must read right where it
# lands: a word that is a verb in one wording and a noun in another ("output") becomes the word
# of its kind, and a phrase that would not fit where it is goes in a form that does ("the
# larger of these two numbers", not "of both"). Each pair matches where it always did, so the
# draws -- and the simulated world -- are those of every wording that already read right.
_SYNONYMS = (
    ("write", "give"),
    ("write", "output"),
    ("write", "state"),
    ("answer with", "reply with"),
    ("answer with", "respond with"),
    ("given", "provided"),
    ("number", "value"),
    ("numbers", "values"),
    ("the two", "both"),
    ("first", "initial"),
    ("backwards", "in reverse"),
    ("larger", "bigger"),
    ("letters", "characters"),
    ("add", "sum up"),
    ("word", "term"),
    ("separated by", "split by"),
)
_NOUN_BEFORE = re.compile(r"\b(?:the|a|an|its|their)\s+$", re.IGNORECASE)
Fit = Callable[[str, str], str]
#: what a swap writes, by the word it was to write and the text before and after the place
_FITTING: dict[str, Fit] = {
    # "output" is a noun after an article ("the output"): "the write" is not English
    "write": lambda before, after: "result" if _NOUN_BEFORE.search(before) else "write",
    # "Provided two numbers, ..." is not English
    "provided": lambda before, after: "provided with",
    # "the larger of both numbers" is not English
    "both": lambda before, after: "these two" if before.lower().endswith("of ") else "both",
    # "the initial minus the second" is not English
    "initial": lambda before, after: _initial(after),
    # "its letters backwards order" is not English
    "in reverse": lambda before, after: "in reverse order",
}


def _initial(after: str) -> str:
    """ "initial" before "letter"; elsewhere "first" says it ("the first one minus ...")."""
    if after.lower().startswith(" letter"):
        return "initial"
    return "first" if after.lower().startswith(" one") else "first one"


#: how a found phrase runs on: "in reverse order" is taken whole
_RUNS_ON = {"in reverse": r"(?: order)?", "provided": r"(?: with)?"}


def _pattern(found: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(found)}{_RUNS_ON.get(found, '')}\b", re.IGNORECASE)


_SYNONYM_PATTERNS = tuple((_pattern(a), b) for a, b in _SYNONYMS) + tuple(
    (_pattern(b), a) for a, b in _SYNONYMS
)


def instruction_key(text: str) -> str:
    """One key for every wording of the same instruction."""
    text = " ".join(text.lower().split())
    text = text.strip("\"'`“”‘’ ")
    text = _LEAD_IN.sub("", text)
    text = text.strip("\"'`“”‘’ ")
    if text.startswith("to "):
        text = text[3:]
    return " ".join(_NOT_WORD.sub(" ", text).split())


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() or len(text) == 1 else text


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _swap_synonym(text: str, rng: random.Random) -> str:
    options = [(p, r) for p, r in _SYNONYM_PATTERNS if p.search(text)]
    if not options:
        return text
    pattern, replacement = options[rng.randrange(len(options))]

    def fitting(match: re.Match[str]) -> str:
        fits = _FITTING.get(replacement)
        before, after = text[: match.start()], text[match.end() :]
        word = fits(before, after) if fits is not None else replacement
        return _upper_first(word) if match.group(0)[:1].isupper() else word

    return pattern.sub(fitting, text, count=1)


def _without_given_clause(description: str) -> str | None:
    """'Given a word, answer with its first letter.' -> 'Answer with its first letter.'"""
    head, comma, rest = description.partition(", ")
    if comma and head.lower().startswith("given ") and rest:
        return _upper_first(rest)
    return None


def cores_of(human_instruction: str | None, description: str | None) -> list[str]:
    cores: list[str] = []
    if human_instruction:
        cores += [human_instruction] * 3
    if description:
        cores += [description] * 2
        short = _without_given_clause(description)
        if short:
            cores.append(short)
    return cores or list(GENERIC_CORES)


def proposal_text(cores: list[str], rng: random.Random, off_task_share: float = 0.12) -> str:
    """One proposed instruction, as a chat model would reply with it."""
    if rng.random() < off_task_share:
        return OFF_TASK[rng.randrange(len(OFF_TASK))]
    core = cores[rng.randrange(len(cores))]
    if rng.random() < 0.5:
        core = _swap_synonym(core, rng)
    text = core
    roll = rng.random()
    if roll < 0.35 and not core.startswith("Given "):
        text = _with_prefix(core, _PREFIXES[rng.randrange(len(_PREFIXES))])
    if rng.random() < 0.3:
        text = text + SUFFIXES[rng.randrange(len(SUFFIXES))]
    return text


def _clause(text: str) -> tuple[str, str]:
    """("Given two numbers, ", the rest) of a text that opens with such a clause, else ("",
    text)."""
    head, comma, rest = text.partition(", ")
    if comma and head.lower().startswith(("given ", "provided with ")) and rest:
        return head + comma, rest
    return "", text


def _with_prefix(text: str, prefix: str) -> str:
    """`text` led by `prefix` ("Please ", "Your task is to "): after its opening clause when it
    has one ("Given two numbers, please answer ..."), never a second such clause."""
    clause, rest = _clause(text)
    if not clause:
        return prefix + (text if prefix.endswith(". ") else _lower_first(text))
    if prefix.startswith("Given "):
        return text
    return clause + _lower_first(prefix) + _lower_first(rest)


def _prefix_of(text: str) -> tuple[str, str] | None:
    """(the text before it, the prefix) of the lead-in `text` has, at its start or after its
    opening clause."""
    clause, rest = _clause(text)
    for where, body in (("", text), (clause, rest)) if clause else (("", text),):
        for prefix in _PREFIXES:
            if body.lower().startswith(prefix.lower()):
                return where, body[: len(prefix)]
    return None


def completion_form(text: str, rng: random.Random) -> str:
    """How a completions model continues "... The instruction was": " to read the input and
    write ..." (a leading polite word or clause is dropped, as such continuations do)."""
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = _upper_first(text[len(prefix) :])
            break
    text = _without_given_clause(text) or text
    lead = _TO_PREFIXES[rng.randrange(len(_TO_PREFIXES))] if rng.random() < 0.2 else ""
    return " to " + lead + _lower_first(text)


def decorate(text: str, rng: random.Random) -> str:
    """The small mess chat models add around an answer: quotes or a lead-in, now and then."""
    roll = rng.random()
    if roll < 0.06:
        return f'"{text}"'
    if roll < 0.1:
        return f"The instruction was: {text}"
    return text


def variant_text(parent: str, rng: random.Random) -> str:
    """A rewording of `parent` that keeps its meaning and differs from it."""
    parent = " ".join(parent.split())
    text = parent
    for _ in range(1 + (rng.random() < 0.4)):
        roll = rng.random()
        if roll < 0.45:
            swapped = _swap_synonym(text, rng)
            text = text if _repeats(swapped) else swapped
        elif roll < 0.65:
            lead = _prefix_of(text)
            if lead:
                before, prefix = lead
                rest = text[len(before) + len(prefix) :]
                text = before + rest if before else _upper_first(rest)
            else:
                text = _with_prefix(text, _PREFIXES[rng.randrange(len(_PREFIXES))])
        elif roll < 0.85:
            closing = [s for s in SUFFIXES if text.endswith(s)]
            text = text[: -len(closing[0])] if closing else _with_suffix(text, rng)
        else:
            text = _with_suffix(text, rng)
    if instruction_key(text) == instruction_key(parent):
        suffixes = [s for s in SUFFIXES if s not in text]
        text = text + (suffixes[rng.randrange(len(suffixes))] if suffixes else " Thank you.")
    return text


def _repeats(text: str) -> bool:
    """Whether a sentence of `text` is said twice ("Answer with the result only." after a
    swap made the other closing sentence it)."""
    sentences = [s.strip().lower() for s in text.split(".") if s.strip()]
    return len(sentences) != len(set(sentences))


def _with_suffix(text: str, rng: random.Random) -> str:
    """`text` with one more closing sentence: the one drawn, or when `text` says it already the
    next one it does not say (none when it says them all)."""
    drawn = rng.randrange(len(SUFFIXES))
    for step in range(len(SUFFIXES)):
        suffix = SUFFIXES[(drawn + step) % len(SUFFIXES)]
        if suffix not in text:
            return text + suffix
    return text
