"""The proposer: the request each template makes, per-call demo sampling, cleaning and counting,
de-duplication across calls, the insert template's capability gate; then against the simulator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from engine.errors import EndpointError
from engine.llm import EndpointConfig, LLMClient
from engine.llm.probing.capabilities import Capabilities, Capability, require_capability
from engine.llm.protocol.results import Completion, Usage
from engine.propose import Deduplicating, Proposer, Templates
from engine.sim import SimConfig, serve_sim
from engine.task import load_task
from engine.task.types import Example

DEMOS = tuple(Example(f"{i} {i + 7}", (str(i + 7),)) for i in range(20))


class ScriptedClient:
    """Records every request; answers each with the next scripted texts."""

    def __init__(self, answers: Sequence[Sequence[str]], *, suffix: bool = True) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self.capabilities = Capabilities(
            "proposal", True, True, True, True, True, suffix, notes=("suffix: 400 unsupported",)
        )

    def _answer(self, kind: str, **request: Any) -> Completion:
        self.requests.append({"kind": kind, **request})
        texts = tuple(self.answers.pop(0))
        return Completion(
            texts, ("stop",) * len(texts), Usage(100, 10, 110), 0.01, 1, "proposal", "sim-1"
        )

    async def chat(self, messages: Sequence[Mapping[str, str]], **kwargs: Any) -> Completion:
        return self._answer("chat", prompt=messages[-1]["content"], **kwargs)

    async def complete(self, prompt: str, **kwargs: Any) -> Completion:
        return self._answer("completions", prompt=prompt, **kwargs)

    async def require(self, capability: Capability) -> None:
        require_capability(self.capabilities, capability)


def proposer(client: ScriptedClient, **options: Any) -> Proposer:
    return Proposer(client, DEMOS, seed=1, **options)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_forward_chat_asks_for_n_instructions_from_five_sampled_demos() -> None:
    client = ScriptedClient([["Add 7.", "The instruction was: add seven."], ["Add 7 again."]])
    source = proposer(client)
    batch = await source.propose(2)
    await source.propose(1)
    first, second = client.requests
    assert first["kind"] == "chat" and first["n"] == 2 and first["temperature"] == 1.0
    assert first["prompt"].startswith("I gave a friend an instruction")
    assert first["prompt"].endswith("in this form:\nInstruction: <the instruction>")
    assert first["prompt"].count("Input: ") == 5
    assert first["prompt"] != second["prompt"], "each call samples its own demos"
    assert [p.text for p in batch.proposals] == ["Add 7.", "Add seven."]
    assert {p.origin for p in batch.proposals} == {"initial"}
    assert (batch.generated, batch.rejected, batch.calls, batch.prompt_tokens) == (2, 0, 1, 100)


@pytest.mark.anyio
async def test_forward_completions_continues_the_instruction_was() -> None:
    client = ScriptedClient([[" to add seven to the number", "\n\nInput: 3", " to" + " x" * 300]])
    batch = await proposer(client, api="completions", demos_per_call=3).propose(3)
    request = client.requests[0]
    assert request["kind"] == "completions"
    assert request["prompt"].endswith("\n\nThe instruction was")
    assert request["prompt"].count("Input: ") == 3
    assert "\n\n" in request["stop"]
    assert [p.text for p in batch.proposals] == ["Add seven to the number"]
    assert batch.rejected == 2  # a bare demo, and one past the length cap


@pytest.mark.anyio
async def test_a_truncated_answer_keeps_its_finished_sentences() -> None:
    client = ScriptedClient([])
    source = proposer(client)
    completion = Completion(
        ("Add seven. Then write the sum of", "Write the sum of"),
        ("length", "length"),
        Usage(1, 1, 2),
        0.0,
        1,
        "p",
        "m",
    )
    batch = source._batch(completion, "resample", (), source._plain)
    assert [p.text for p in batch.proposals] == ["Add seven."]
    assert batch.rejected == 1


@pytest.mark.anyio
async def test_insert_sends_the_demos_as_suffix_when_the_endpoint_supports_it() -> None:
    client = ScriptedClient([["add seven to the number"]])
    source = proposer(client, mode="insert")
    await source.check()
    batch = await source.propose(1)
    request = client.requests[0]
    assert request["kind"] == "completions"
    assert request["prompt"] == "I instructed my friend to "
    assert request["suffix"].startswith(". The friend read the instruction")
    assert request["suffix"].count("Input: ") == 5
    assert [p.text for p in batch.proposals] == ["Add seven to the number"]


@pytest.mark.anyio
async def test_insert_on_an_endpoint_without_suffix_fails_naming_the_endpoint() -> None:
    source = proposer(ScriptedClient([], suffix=False), mode="insert")
    with pytest.raises(EndpointError, match=r"endpoint 'proposal' cannot provide suffix.*forward"):
        await source.check()
    await proposer(ScriptedClient([], suffix=False)).check()  # forward needs no suffix


@pytest.mark.anyio
async def test_variants_use_the_variant_template_and_name_their_parent() -> None:
    client = ScriptedClient([["Output: Add 7 to it.", "Sum with seven."]])
    templates = Templates(variant="Reword: {instruction}\nReworded:")
    batch = await proposer(client, templates=templates).vary("Add seven.", 4, 2)
    assert client.requests[0]["prompt"] == "Reword: Add seven.\nReworded:"
    assert client.requests[0]["n"] == 2
    assert [(p.text, p.origin, p.parent) for p in batch.proposals] == [
        ("Add 7 to it.", "resample", 4),
        ("Sum with seven.", "resample", 4),
    ]


@pytest.mark.anyio
async def test_deduplicating_counts_copies_across_calls_and_of_the_parent() -> None:
    client = ScriptedClient(
        [
            ["Add seven to the number.", "add seven to the number", "Subtract nothing."],
            ["Add seven to the number!", "Double the number."],
            ["Subtract nothing.", "Subtract nothing, then add seven."],
        ]
    )
    source = Deduplicating(proposer(client), similarity=0.9, known=["Double the number"])
    first = await source.propose(3)
    second = await source.propose(2)
    third = await source.vary("Subtract nothing.", 2, 2)
    assert [p.text for p in first.proposals] == ["Add seven to the number.", "Subtract nothing."]
    assert (first.generated, first.duplicates) == (3, 1)
    assert (second.proposals, second.duplicates) == ((), 2)
    assert [p.text for p in third.proposals] == ["Subtract nothing, then add seven."]
    assert third.duplicates == 1


def test_bad_arguments_are_refused() -> None:
    client = ScriptedClient([])
    with pytest.raises(ValueError, match="demo"):
        Proposer(client, (), seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        proposer(client, mode="backwards")


@pytest.mark.anyio
@pytest.mark.integration
@pytest.mark.parametrize("api", ["chat", "completions"])
async def test_against_the_simulator_every_kept_proposal_is_a_clean_instruction(api: str) -> None:
    task = load_task("larger_number", seed=2)
    async with serve_sim(SimConfig(tasks=(task,), seed=2)) as server:
        endpoint = EndpointConfig(name="proposal", base_url=server.base_url, model="sim-1")
        async with LLMClient(endpoint) as client:
            source = Deduplicating(Proposer(client, task.examples[:30], api=api, seed=3))
            batches = [await source.propose(8) for _ in range(4)]
            leader = batches[0].proposals[0]
            batches.append(await source.vary(leader.text, 0, 4))
    kept = [p.text for b in batches for p in b.proposals]
    assert sum(b.generated for b in batches) == 36
    assert len(kept) + sum(b.duplicates + b.rejected for b in batches) == 36
    assert len(kept) >= 8
    for text in kept:
        assert text[:1].isupper() and not text.lower().startswith(("to ", "the instruction"))
        assert "\n" not in text and '"' not in text and "Input:" not in text
    assert batches[-1].proposals and {p.origin for p in batches[-1].proposals} == {"resample"}


@pytest.mark.anyio
async def test_answers_about_the_task_are_rejected_with_reasons_and_kept_raw() -> None:
    answers = [
        "To determine the instruction, I'll analyze each input-output pair:",
        "What is the sum?",
        "Sure.\nInstruction: Add the two numbers.",
        "Provide an instruction.",
    ]
    batch = await proposer(ScriptedClient([answers])).propose(4)
    assert [p.text for p in batch.proposals] == ["Add the two numbers."]
    assert batch.rejected == 3
    assert batch.reasons == {"about_the_task": 2, "question": 1}
    assert batch.raw == tuple(answers)
