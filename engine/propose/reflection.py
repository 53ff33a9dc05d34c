"""Reading the revised instruction out of a reflection's or a merge's answer.

A reflection answers with a diagnosis and then the revised instruction, which the templates ask
for on one line after ``Instruction:``; models write it in many ways: ``**Revised
instruction:** ...``, a heading (``### Improved Instruction``) over the instruction, a fenced
block, the label on a line of its own. `read_revision` takes the last labelled line (a
diagnosis may quote the old instruction first), else the last label inside a line ("The
improved instruction should be: ..."), else the paragraph under a heading that names an
instruction, else the last fenced block, else an answer that is one paragraph and no
diagnosis (a completions model continuing "Instruction:"). What it finds is cleaned and judged
like any proposal (`engine.propose.normalise.judge_proposal`); an answer with no instruction in
it is rejected as ``no_instruction``.
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
    rf"\b{_WORDS}\s+instruction\b[^:\uff1a\n]{{0,40}}[:\uff1a][\s*_]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED = {'"': '"', "\u201c": "\u201d", "'": "'", "`": "`"}
_HEADING = re.compile(
    rf"^\s*(?:#+|\*\*|__)\s*(?:the\s+)?(?:{_WORDS}\s+)*instruction\s*(?:\*\*|__)?\s*$",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_DIAGNOSIS = re.compile(r"^\s*[*_#]*\s*(?:diagnosis|analysis|reasoning)\b", re.IGNORECASE)


def _paragraph_after(lines: list[str], start: int) -> str:
    """The lines of the first paragraph from `start` on (blank lines before it skipped)."""
    taken: list[str] = []
    for line in lines[start:]:
        if line.strip():
            taken.append(line.strip())
        elif taken:
            break
    return " ".join(taken)


def _unquoted(text: str) -> str:
    """The text inside a leading quote up to its closing one (a model goes on after it)."""
    close = _QUOTED.get(text[:1])
    if close is not None:
        end = text.find(close, 1)
        if end > 1:
            return text[1:end]
    return text


def read_revision(text: str) -> str:
    """The revised instruction an answer holds, not yet cleaned ('' when it holds none)."""
    lines = text.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        found = _LABELLED.match(lines[index])
        if found is None:
            continue
        content = found.group(1).strip().strip("*_").strip()
        return _unquoted(content) or _paragraph_after(lines, index + 1)
    inline = list(_INLINE.finditer(text))  # "... The improved instruction should be: ..."
    if inline:
        content = inline[-1].group(1).strip().strip("*_").strip()
        if content:
            return _unquoted(content)
        following = text[inline[-1].end() :].splitlines()
        return _paragraph_after(following, 0)
    for index in range(len(lines) - 1, -1, -1):
        if _HEADING.match(lines[index]):
            return _paragraph_after(lines, index + 1)
    fenced = _FENCE.findall(text)
    if fenced:
        return " ".join(fenced[-1].split())
    paragraphs = [part for part in re.split(r"\n\s*\n", text.strip()) if part.strip()]
    if len(paragraphs) == 1 and not _DIAGNOSIS.match(paragraphs[0]):
        return paragraphs[0]
    return ""


def judge_revision(text: str, *, max_chars: int | None) -> tuple[str, str]:
    """(instruction, "") for a revision worth scoring, else ("", reason): ``no_instruction``
    when the answer holds none, else a reason of `judge_proposal`."""
    if not text.strip():
        return "", "empty"
    revision = read_revision(text)
    if not revision:
        return "", "no_instruction"
    return judge_proposal(revision, max_chars=max_chars, imperative=False)
