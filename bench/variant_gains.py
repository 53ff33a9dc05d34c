"""What each kind of variant did in the proposals bench's studies, read from their journals
(bench/results/proposals-work/journals, written by bench/proposals.py). No model is called.

- **gain over its parent**: each variant against its first parent on the scoring examples both
  were scored on (at least `--min-shared`), the mean difference of their rewards. A parent was a
  leader when the round began, so its scores are biased upward and every kind of variant looks
  worse than it is, alike; the comparison between kinds holds.
- **share of the scoring calls** that went to the variant round's candidates, per strategy and
  start: a study whose variants arrive after the budget is spent scores none of them.
- **unscored picks**: studies whose pick no scoring call had scored.

    .venv/bin/python bench/variant_gains.py
    .venv/bin/python bench/variant_gains.py --journals DIR [DIR ...]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from engine.settings import SETTINGS  # noqa: E402
from engine.study.events import CandidateAdded, PullDone, StudyFinished  # noqa: E402
from engine.study.journal import read_events  # noqa: E402

JOURNALS = ROOT / "results" / "proposals-work" / "journals"
POLICY = next(one for one in SETTINGS if one.flat == "policy")
#: {task}-{strategy}-{demos}-{seed}-{options}[-shared][-s<sha8>][-<policy>].jsonl
#: (bench/proposals.py `journal_path`: the system message's tag, a policy other than lucb)
_POLICIES = "|".join(re.escape(one) for one in POLICY.choices if one != "lucb")
NAME = re.compile(r"^(?P<task>.+?)-(?P<strategy>resample|reflect|both)-(?P<demos>[^-]+)-"
                  r"(?P<seed>\d+)-(?P<options>.+?)(?P<shared>-shared)?(?P<system>-s[0-9a-f]{8})?"
                  rf"(?:-(?P<policy>{_POLICIES}))?\.jsonl$")  # fmt: skip
VARIANT_ORIGINS = ("resample", "reflect", "merge", "demos")


@dataclass
class Study:
    """One finished study's journal, read for what its variants did."""

    strategy: str
    shared: bool
    system: str | None = None  # the tag of another system message than the first
    policy: str = "lucb"
    origins: list[str] = field(default_factory=list)
    parents: list[list[int]] = field(default_factory=list)
    rewards: dict[int, dict[int, float]] = field(default_factory=dict)
    winner: int | None = None

    @property
    def key(self) -> str:
        system = f", system {self.system}" if self.system else ""
        return (
            f"{self.strategy} ({'shared' if self.shared else 'own'} start{system}, {self.policy})"
        )

    def variant_share(self) -> float:
        pulls = sum(len(seen) for seen in self.rewards.values())
        variants = sum(
            len(seen) for arm, seen in self.rewards.items() if self.origins[arm] in VARIANT_ORIGINS
        )
        return variants / pulls if pulls else 0.0

    def gains(self, min_shared: int) -> list[tuple[str, float | None]]:
        """(kind, mean reward difference with its first parent on the examples both were scored
        on; None where they share fewer than `min_shared`) of each variant."""
        found: list[tuple[str, float | None]] = []
        for arm, origin in enumerate(self.origins):
            if origin not in VARIANT_ORIGINS or not self.parents[arm]:
                continue
            mine, theirs = self.rewards.get(arm, {}), self.rewards.get(self.parents[arm][0], {})
            shared = sorted(set(mine) & set(theirs))
            gain = None
            if len(shared) >= min_shared:
                gain = statistics.fmean(mine[x] - theirs[x] for x in shared)
            found.append((origin, gain))
        return found


def read_study(path: Path) -> Study | None:
    """The study a journal holds, None when its name is not the bench's or it did not finish."""
    named = NAME.match(path.name)
    if named is None:
        return None
    study = Study(named["strategy"], named["shared"] is not None,
                  named["system"] and named["system"][1:], named["policy"] or "lucb")  # fmt: skip
    for event in read_events(path):
        if isinstance(event, CandidateAdded):
            study.origins.append(event.origin)
            study.parents.append(list(event.parents))
        elif isinstance(event, PullDone):
            study.rewards.setdefault(event.arm, {})[event.example] = event.reward
        elif isinstance(event, StudyFinished) and event.status == "finished":
            study.winner = event.winner
    return study if study.winner is not None else None


def report(studies: list[Study], min_shared: int) -> str:
    lines = ["| variant kind | variants | compared | mean gain over parent | better | worse | "
             "equal |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    kinds: dict[str, list[float | None]] = {}
    for study in studies:
        for kind, gain in study.gains(min_shared):
            kinds.setdefault(kind, []).append(gain)
    for kind, gains in sorted(kinds.items()):
        known = [gain for gain in gains if gain is not None]
        mean = f"{statistics.fmean(known):+.3f}" if known else "-"
        lines.append(
            f"| {kind} | {len(gains)} | {len(known)} | {mean} | {sum(g > 0 for g in known)} | "
            f"{sum(g < 0 for g in known)} | {sum(g == 0 for g in known)} |"
        )
    lines += ["", "| strategy | studies | median share of scoring calls to variants | under 5 % |"
              " unscored picks |", "|---|---|---|---|---|"]  # fmt: skip
    by_key: dict[str, list[Study]] = {}
    for study in studies:
        by_key.setdefault(study.key, []).append(study)
    for key, group in sorted(by_key.items()):
        shares = [study.variant_share() for study in group]
        unscored = sum(not study.rewards.get(study.winner or 0) for study in group)
        lines.append(
            f"| {key} | {len(group)} | {statistics.median(shares):.0%} | "
            f"{sum(share < 0.05 for share in shares)} | {unscored} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journals", type=Path, nargs="+", default=[JOURNALS])
    parser.add_argument("--min-shared", type=int, default=3,
                        help="examples a variant and its parent must share to be compared")  # fmt: skip
    parser.add_argument("--start", choices=("own", "shared"), default=None,
                        help="only the studies with this start (default: both)")  # fmt: skip
    parser.add_argument("--policy", default=None,
                        help="only the studies of this scheduler policy (default: every one)")  # fmt: skip
    args = parser.parse_args(argv)
    paths = sorted(path for folder in args.journals for path in folder.glob("*.jsonl"))
    studies = [study for path in paths if (study := read_study(path)) is not None]
    if args.start is not None:
        studies = [study for study in studies if study.shared == (args.start == "shared")]
    if args.policy is not None:
        studies = [study for study in studies if study.policy == args.policy]
    if not studies:
        parser.error(f"no finished proposals-bench journals in {args.journals}")
    print(f"{len(studies)} finished studies")
    print(report(studies, args.min_shared))
    return 0


if __name__ == "__main__":
    sys.exit(main())
