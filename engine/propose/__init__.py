"""Proposals: APE's templates as data, the proposer (forward, insert, variant; reflection and
merge), parents from the per-example Pareto front, and the cleaning and de-duplication of what
the proposal model writes. Reference: Zhou et al., "Large Language
Models are Human-Level Prompt Engineers" (ICLR 2023), section 3; docs/design.md, "Proposals"."""

from engine.propose.candidates import UserCandidate, check_candidates, load_candidates
from engine.propose.normalise import (
    DEFAULT_MAX_CHARS,
    DEFAULT_SIMILARITY,
    Deduplicator,
    clean_proposal,
    instruction_key,
    jaccard,
    normalise_instruction,
)
from engine.propose.parents import RIGHT_FROM, MergePair, front_wins, merge_pair, sample_parents
from engine.propose.proposal import CandidateSource, Evidence, Parent, Proposal, ProposalBatch
from engine.propose.proposer import PROPOSAL_MODES, Deduplicating, Proposer
from engine.propose.reflection import judge_revision, read_revision
from engine.propose.templates import PLACEHOLDERS, Templates, load_templates

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_SIMILARITY",
    "PLACEHOLDERS",
    "PROPOSAL_MODES",
    "RIGHT_FROM",
    "CandidateSource",
    "Deduplicating",
    "Deduplicator",
    "Evidence",
    "MergePair",
    "Parent",
    "Proposal",
    "ProposalBatch",
    "Proposer",
    "Templates",
    "UserCandidate",
    "check_candidates",
    "clean_proposal",
    "front_wins",
    "instruction_key",
    "jaccard",
    "judge_revision",
    "load_candidates",
    "load_templates",
    "merge_pair",
    "normalise_instruction",
    "read_revision",
    "sample_parents",
]
