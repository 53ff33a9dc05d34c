"""The first failure of each kind, shown the moment it happens: a study whose calls fail says
why on every screen (plain lines, the progress bar, the live UI, `top`), not only in its journal.
The snapshot carries them (`SnapshotExtra.errors`: error kind -> the first such message)."""

from __future__ import annotations

from engine.study.snapshot import StudySnapshot

__all__ = ["NewErrors", "snapshot_errors"]


def snapshot_errors(snapshot: StudySnapshot) -> dict[str, str]:
    """Error kind -> the first message of that kind, in the order they happened (without the
    study's "call failed for good (kind): " lead-in: the kind is shown beside it)."""
    errors = snapshot.extra.errors
    return {k: v.removeprefix(f"call failed for good ({k}): ") for k, v in errors.items()}


class NewErrors:
    """The error lines a display has not shown yet."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def lines(self, snapshot: StudySnapshot) -> list[str]:
        fresh = []
        for kind, message in snapshot_errors(snapshot).items():
            if kind not in self._seen:
                self._seen.add(kind)
                fresh.append(f"error ({kind}): {message}")
        return fresh
