"""The gate: pass or fail after the final evaluation, for a pipeline that must not ship a worse
prompt (`--fail-under SCORE`, `--baseline INSTRUCTION`).

The winner's held-out score -- its mean on the test pool, the examples the search never saw --
is compared with a floor (`fail_under`) and with a baseline instruction (yours in production)
scored on the same test examples in the same final evaluation: the gate fails when the
winner's score is below the floor, or below the baseline's (a tie passes). A study that ended
without a winner scored on the test pool fails it. The verdict is one line that says which,
and the result's JSON carries it; the command line exits with `GATE_EXIT` on a fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.study.evaluation import Evaluation
from engine.study.settings import Gate

__all__ = ["GATE_EXIT", "GateVerdict", "gate_verdict"]

#: The exit code of a study that ran to its end and failed its gate (1: the study failed;
#: 2: bad input; 130: interrupted).
GATE_EXIT = 3


@dataclass(frozen=True, slots=True)
class GateVerdict:
    passed: bool
    line: str  # what the gate found, in one line
    fail_under: float | None
    winner: float | None  # the winner's held-out score
    baseline: float | None  # the baseline's, on the same test examples

    def to_json(self) -> dict[str, Any]:
        def shown(value: float | None) -> float | None:
            return None if value is None else round(value, 6)

        return {
            "passed": self.passed,
            "line": self.line,
            "fail_under": self.fail_under,
            "winner": shown(self.winner),
            "baseline": shown(self.baseline),
        }


def gate_verdict(
    gate: Gate, winner: Evaluation | None, baseline: Evaluation | None, status: str = "finished"
) -> GateVerdict | None:
    """The verdict of `gate` on the winner's and the baseline's held-out scores (a study that
    did not finish fails it); None when the study has no gate."""
    if gate.fail_under is None and gate.baseline is None:
        return None
    floor = gate.fail_under
    if status != "finished":
        line = f"gate failed: the study ended {status}, before its final evaluation"
        return GateVerdict(False, line, floor, None, None)
    if winner is None or winner.n == 0:
        line = "gate failed: no winner was scored on the test pool"
        return GateVerdict(False, line, floor, None, None)
    score = winner.test_score
    base = baseline.test_score if baseline is not None and baseline.n > 0 else None
    if gate.baseline is not None and base is None:
        line = "gate failed: the baseline was not scored on the test pool (its calls failed)"
        return GateVerdict(False, line, floor, score, None)
    short: list[str] = []
    if floor is not None and score < floor:
        short.append(f"--fail-under {floor:g}")
    if base is not None and score < base:
        short.append(f"the baseline's {base:.3f}")
    head = f"the winner's held-out score {score:.3f} (n={winner.n})"
    if short:
        line = f"gate failed: {head} is below {' and below '.join(short)}"
        return GateVerdict(False, line, floor, score, base)
    passed = [f"--fail-under {floor:g}"] if floor is not None else []
    if base is not None:
        passed.append(f"the baseline's {base:.3f}")
    line = f"gate passed: {head} is at least {' and at least '.join(passed)}"
    return GateVerdict(True, line, floor, score, base)
