"""What a study proved about its pick, in the words every screen uses (the report, `show`, the
HTML page, the live board, `top`, the last lines of `run`).

The scheduler's `Certificate` says whether the pick is proven within the tolerance of the best
candidate on the scoring pool (its stopping rule held), and when it is not -- a budget ended
first, the user stopped the search -- how close to the best the data still put it, with the
same confidence, and about how many more scoring calls a proof would take
(docs/design.md, "Scheduler").
"""

from __future__ import annotations

from engine.search import Certificate

__all__ = ["pick_role", "proof_line"]


def pick_role(certificate: Certificate | None) -> str:
    """The pick's name in a table: the winner when proven (or when nothing says otherwise: a
    snapshot of an earlier service), else the best so far."""
    return "best so far" if certificate is not None and not certificate.proven else "winner"


def proof_line(certificate: Certificate | None) -> str:
    """One sentence: proven or not, within how much of the best, and what a proof needs."""
    if certificate is None or certificate.arm is None:
        return "nothing is proven: no candidate was scored"
    confidence = f"{1 - certificate.delta:.0%} confidence"
    arm = f"#{certificate.arm}"
    if certificate.proven:
        return (
            f"proven: {arm} is within {certificate.epsilon:.3f} of the best candidate on the "
            f"scoring pool ({confidence})"
        )
    if certificate.supported >= 1.0:
        known = "the data do not yet bound how far it is from the best"
    else:
        known = (
            f"the data put it within {certificate.supported:.3f} of the best ({confidence}), "
            f"not within {certificate.epsilon:.3f}"
        )
    more = (
        f"; about {certificate.more_calls:,} more scoring calls would likely prove it"
        if certificate.more_calls
        else ""
    )
    return f"not proven: {arm} is the best so far, but {known}{more}"
