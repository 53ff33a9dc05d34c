"""Reading the revised instruction out of a reflection's or a merge's answer.

A reflection answers with a diagnosis and then the revised instruction, which the templates ask
for on one line after ``Instruction:``; models write it in many ways: ``**Revised
instruction:** ...``, a heading (``### Improved Instruction``) over the instruction, a fenced
block, the label on a line of its own, or a sentence that leads into it ("The improved
instruction that makes the model give the expected outputs would be:", "The instruction should
read:") with the instruction after the colon, quoted, or on the next line. The readings,
likeliest first: the labelled lines from the last up (a diagnosis may quote the old
instruction first; the last one may be the template's ``<the improved instruction>`` left as
written), then the sentences that lead into one from the last up; an answer with neither gives
the paragraph under a heading that names an instruction, else the last fenced block, else
itself where it is one paragraph and no diagnosis (a completions model continuing
"Instruction:"). Where the instruction is a paragraph of several lines, its first line is a
further reading: a model asked for one line often comments on the next. Each reading is
cleaned and judged like any proposal (`engine.propose.normalise.judge_proposal`) and the first
one kept wins (an old instruction read this way is a duplicate the proposer drops); an answer
with no instruction in it is rejected as ``no_instruction``.
"""

from __future__ import annotations

import re

from engine.propose.normalise import judge_proposal

__all__ = ["judge_revision", "read_revision"]

_WORDS = r"(?:new|revised|improved|updated|better|final|combined|merged|rewritten|refined)"
_LABELLED = re.compile(
    rf"^[\s#>*_\-]*(?:the\s+)?(?:{_WORDS}\s+)?(?:{_WORDS}\s+)?instruction\s*[*_]*\s*[:\uff1a]"
    r"[\s*_]*(.*)$",
    re.IGNORECASE,
)
_INLINE = re.compile(  # "The improved instruction should be: ...", "... is as follows:"
    rf"\b{_WORDS}\s+instruction\b[^:\uff1a\n]{{0,80}}[:\uff1a][\s*_]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
#: "The instruction should read:" with no adjective: the instruction must follow quoted or on
#: the next line (unquoted on the same line it is as likely more diagnosis)
_LEADS = re.compile(
    r"\binstruction\s+(?:should|would|could|must|will|might)\s+(?:read|say|be|look\s+like|"
    r"become|state)\b[^:\uff1a\n]{0,40}[:\uff1a][\s*_]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED = {'"': '"', "\u201c": "\u201d", "'": "'", "`": "`"}
_HEADING = re.compile(
    rf"^\s*(?:#+|\*\*|__)\s*(?:the\s+)?(?:{_WORDS}\s+)*instruction\s*(?:\*\*|__)?\s*$",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_DIAGNOSIS = re.compile(r"^\s*[*_#]*\s*(?:diagnosis|analysis|reasoning)\b", re.IGNORECASE)


def _paragraph_after(lines: list[str], start: int) -> list[str]:
    """The lines of the first paragraph from `start` on (blank lines before it skipped)."""
    taken: list[str] = []
    for line in lines[start:]:
        if line.strip():
            taken.append(line.strip())
        elif taken:
            break
    return taken


def _readings(taken: list[str]) -> list[str]:
    """A paragraph's lines as readings: the whole, then its first line alone."""
    if not taken:
        return []
    whole = " ".join(taken)
    return [whole, _unquoted(taken[0])] if len(taken) > 1 else [_unquoted(whole)]


def _unquoted(text: str) -> str:
    """The text inside a leading quote up to its closing one (a model goes on after it)."""
    close = _QUOTED.get(text[:1])
    if close is not None:
        end = text.find(close, 1)
        if end > 1:
            return text[1:end]
    return text


def _after_colon(found: re.Match[str], text: str, *, quoted_only: bool) -> list[str]:
    """The readings after a lead-in's colon: the rest of its line (quoted, where `quoted_only`
    says so), else the paragraph that follows."""
    content = found.group(1).strip().strip("*_").strip()
    if content:
        inner = _unquoted(content)
        if quoted_only and inner == content:
            return []
        return [inner]
    return _readings(_paragraph_after(text[found.end() :].splitlines(), 0))


def _revisions(text: str) -> list[str]:
    """The readings of the revised instruction an answer holds, the likeliest first, not yet
    cleaned (none when it holds none): each labelled line from the last up, then each lead-in
    from the last up, then the other forms. A later reading is tried only where the earlier ones
    are not kept: "Instruction: <the improved instruction>" left as written after a revision
    given under another label."""
    lines = text.splitlines()
    readings: list[str] = []
    for index in range(len(lines) - 1, -1, -1):
        found = _LABELLED.match(lines[index])
        if found is None:
            continue
        content = found.group(1).strip().strip("*_").strip()
        readings += (
            [_unquoted(content)] if content else _readings(_paragraph_after(lines, index + 1))
        )
    leads = [(m.start(), m, False) for m in _INLINE.finditer(text)]
    leads += [(m.start(), m, True) for m in _LEADS.finditer(text)]
    for _, found, quoted_only in sorted(leads, key=lambda lead: lead[0], reverse=True):
        readings += _after_colon(found, text, quoted_only=quoted_only)
    if readings:
        return readings
    for index in range(len(lines) - 1, -1, -1):
        if _HEADING.match(lines[index]):
            return _readings(_paragraph_after(lines, index + 1))
    fenced = _FENCE.findall(text)
    if fenced:
        return [" ".join(fenced[-1].split())]
    paragraphs = [part for part in re.split(r"\n\s*\n", text.strip()) if part.strip()]
    if len(paragraphs) == 1 and not _DIAGNOSIS.match(paragraphs[0]):
        return [paragraphs[0]]
    return []


def read_revision(text: str) -> str:
    """The revised instruction an answer holds, not yet cleaned ('' when it holds none)."""
    found = _revisions(text)
    return found[0] if found else ""


def judge_revision(text: str, *, max_chars: int | None) -> tuple[str, str]:
    """(instruction, "") for a revision worth scoring, else ("", reason): ``no_instruction``
    when the answer holds none, else a reason of `judge_proposal`."""
    if not text.strip():
        return "", "empty"
    readings = _revisions(text)
    if not readings:
        return "", "no_instruction"
    verdicts = (judge_proposal(one, max_chars=max_chars, imperative=False) for one in readings)
    first = next(verdicts)  # judged only until one is kept
    return first if first[0] else next((verdict for verdict in verdicts if verdict[0]), first)
