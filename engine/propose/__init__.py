"""Proposals: APE's templates as data, the proposer (forward, insert, variant), and the cleaning
and de-duplication of what the proposal model writes. Reference: Zhou et al., "Large Language
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
from engine.propose.proposal import CandidateSource, Proposal, ProposalBatch
from engine.propose.proposer import PROPOSAL_MODES, Deduplicating, Proposer
from engine.propose.templates import PLACEHOLDERS, Templates, load_templates

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_SIMILARITY",
    "PLACEHOLDERS",
    "PROPOSAL_MODES",
    "CandidateSource",
    "Deduplicating",
    "Deduplicator",
    "Proposal",
    "ProposalBatch",
    "Proposer",
    "Templates",
    "UserCandidate",
    "check_candidates",
    "clean_proposal",
    "instruction_key",
    "jaccard",
    "load_candidates",
    "load_templates",
    "normalise_instruction",
]
