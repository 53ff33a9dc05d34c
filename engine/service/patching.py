"""A PATCH applied to a running study: every part it names checked against the study first
(the candidates it drops, the endpoints it names), so a bad one changes nothing; then each
change through the study's `StudyControl`."""

from __future__ import annotations

from engine.service.entry import StudyEntry
from engine.service.requests import Patch, RequestError
from engine.study.snapshot import StudyControl, StudySnapshot

__all__ = ["apply_patch"]


def apply_patch(
    entry: StudyEntry, control: StudyControl, snapshot: StudySnapshot, patch: Patch
) -> None:
    """Apply `patch` (decoded and ranged) to the study `entry` runs, as it stood in `snapshot`."""
    _check_endpoint_names(entry, snapshot, patch)
    count = len(snapshot.arms)
    for index, arm in enumerate(patch.drop):
        if not 0 <= arm < count:
            raise RequestError(
                f"drop[{index}]: no candidate {arm}; the study has {count} (0 to {count - 1})",
                f"drop[{index}]",
            )
    if patch.concurrency is not None:
        control.set_concurrency(patch.concurrency)
    if patch.rate_limits:
        entry.cap(control, patch.rate_limits)
    if patch.endpoint_rate_limits:
        entry.set_endpoint_limits(patch.endpoint_rate_limits)
    for name, limit in patch.budgets.items():
        control.set_budget(name, limit)
    if patch.new_candidate_share is not None:
        control.set_new_candidate_share(patch.new_candidate_share)
    for arm in patch.drop:
        control.drop_arm(arm)
    if patch.paused is True:
        control.pause()
    elif patch.paused is False:
        control.resume()
    if patch.stop_search:
        control.stop_search()


def _check_endpoint_names(entry: StudyEntry, snapshot: StudySnapshot, patch: Patch) -> None:
    """A PATCH naming an endpoint names one of the study's, before anything changes."""
    names = [row.endpoint for row in snapshot.limiters]
    for field, limits, known in (
        ("rate_limits", patch.rate_limits, names),
        ("endpoint_rate_limits", patch.endpoint_rate_limits, list(entry.limiters_by_name)),
    ):
        name = limits.get("endpoint")
        if name is not None and name not in known:
            raise RequestError(
                f"{field}.endpoint: the study has no endpoint {name!r} here; it has "
                f"{', '.join(known) or 'none shared'}",
                f"{field}.endpoint",
            )
