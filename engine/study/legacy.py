"""Journals of format version 2, read as this version's events.

Version 2 named two kinds of candidate otherwise ("proposal" for the first batch, "variant"
for a rewording) and gave a candidate one `parent`; version 3 names every kind
(`engine.study.events.ORIGINS`) and gives `parents`. A version-2 journal that a newer engine
resumed holds lines of both forms after its version-2 header, so the reader of version 2
takes either form and hands on version-3 events: the study and the screens see one form.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import msgspec

from engine.study.events import (
    CandidateAdded,
    Event,
    Fact,
    Index,
    Origin,
    Text,
)

__all__ = ["LEGACY_VERSIONS", "V2_ORIGINS", "legacy_decoder", "upgrade"]

#: The earlier formats this version reads.
LEGACY_VERSIONS = frozenset({2})
#: What version 2 called the kinds version 3 renamed.
V2_ORIGINS: dict[str, Origin] = {"proposal": "initial", "variant": "resample"}


class _CandidateAddedV2(Fact, frozen=True, tag="candidate_added"):
    """`CandidateAdded` as version 2 wrote it, or as version 3 writes it."""

    arm: Index
    instruction: Text
    origin: Literal[
        "proposal", "variant", "initial", "resample", "reflect", "merge", "human", "user"
    ]
    parent: Index | None = None
    parents: Annotated[list[Index], msgspec.Meta(max_length=8)] = msgspec.field(
        default_factory=list
    )
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""


def _union() -> Any:
    others = [kind for kind in typing.get_args(Event) if kind is not CandidateAdded]
    return typing.Union[(*others, _CandidateAddedV2)]


_V2_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_union())


def legacy_decoder(version: int) -> msgspec.json.Decoder[Any] | None:
    """The decoder of the lines of a journal of format `version` (None: this version's own)."""
    return _V2_DECODER if version in LEGACY_VERSIONS else None


def upgrade(event: Any) -> Event:
    """A decoded line of a version-2 journal as this version's event."""
    if not isinstance(event, _CandidateAddedV2):
        return typing.cast(Event, event)
    parents = list(event.parents)
    if not parents and event.parent is not None:
        parents = [event.parent]
    return CandidateAdded(
        arm=event.arm,
        instruction=event.instruction,
        origin=V2_ORIGINS.get(event.origin, event.origin),  # type: ignore[arg-type]
        parents=parents,
        name=event.name,
    )
