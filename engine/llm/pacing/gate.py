"""What a caller sets for the calls it makes: a send gate, and a permit admitted in advance.

A send gate lets a caller take back calls that have not gone out yet (a paused study).

The client consults the gate of the current context (`SEND_GATE`, a context variable the caller
sets in the task that makes its calls) before it queues at the limiter and again once the limiter
admits the call. While the gate is shut, such a call gives its permit back and raises
`CallHeldBack`: nothing was sent, so nothing is paid, and the caller can hand the work back (the
study returns the pull to its policy). Calls already sent finish as usual.

A caller that waits at the rate limiter *before* it decides what to send (a study choosing each
pull only when a call can go out) puts the permit it was given in `ADMITTED`; the client's first
attempt of the next call in that context takes it instead of queueing, and re-bases its token
estimate on the real request. A permit nobody took is the caller's to give back.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.llm.pacing.limiter import Permit

__all__ = ["ADMITTED", "SEND_GATE", "Admitted", "CallHeldBack", "SendGate"]


class CallHeldBack(Exception):
    """The caller's gate was shut before this call was sent: nothing went out."""


class SendGate:
    """Open or shut (shut: calls not yet sent are held back)."""

    __slots__ = ("is_open",)

    def __init__(self) -> None:
        self.is_open = True

    def open(self) -> None:
        self.is_open = True

    def shut(self) -> None:
        self.is_open = False

    def check(self) -> None:
        if not self.is_open:
            raise CallHeldBack("held back: the caller's gate is shut (paused)")


#: the gate of the calls made in this context (None: calls are never held back)
SEND_GATE: ContextVar[SendGate | None] = ContextVar("ape_engine_send_gate", default=None)


class Admitted:
    """A permit admitted before the call was chosen; `taken` once a call used it."""

    __slots__ = ("permit", "taken")

    def __init__(self, permit: Permit) -> None:
        self.permit = permit
        self.taken = False


#: the permit the next call made in this context may use instead of queueing at the limiter
ADMITTED: ContextVar[Admitted | None] = ContextVar("ape_engine_admitted", default=None)
