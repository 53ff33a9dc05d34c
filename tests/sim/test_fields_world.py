"""The simulated world reads inputs of named fields as the engine shows them: labelled, one a
line, with no ``Input:`` in front."""

from __future__ import annotations

import json

from engine.propose import Templates
from engine.serving import GenerationRequest
from engine.sim import SimConfig, World
from engine.study.prompting import ScoringPrompt
from engine.task import Task
from engine.task.fields import with_fields

INSTRUCTION = "Classify the ticket by its title and body."


def ticket_task() -> Task:
    examples = tuple(
        with_fields(
            (("title", f"order {i}"), ("body", f"{i} apples")),
            (json.dumps({"category": "billing" if i % 3 else "shipping"}),),
            key=f"line {i + 1}",
        )
        for i in range(30)
    )
    return Task("tickets", examples, human_instruction=INSTRUCTION, fields=("title", "body"))


def generate(w: World, prompt: str, messages: tuple[tuple[str, str], ...] = ()) -> str:
    request = GenerationRequest(
        api="chat", model="sim-1", prompt=prompt, max_tokens=64, n=1, temperature=0.0,
        messages=messages,
    )  # fmt: skip
    return w.generate_now(request)[0].text


def test_a_fielded_question_is_answered_from_the_task() -> None:
    task = ticket_task()
    w = World([task], SimConfig(seed=0))
    asking = ScoringPrompt(Templates().for_fields())
    answers = {o for e in task.examples for o in e.outputs}
    right = 0
    for example in task.examples:
        said = generate(w, asking.completion(INSTRUCTION, example.input))
        assert said in answers  # an answer of the task's, never "I do not know."
        right += said in example.outputs
    assert right / len(task.examples) > 0.5  # the human instruction is a good one


def test_demos_as_earlier_turns_and_proposals_of_a_fielded_task() -> None:
    task = ticket_task()
    w = World([task], SimConfig(seed=0))
    asking = ScoringPrompt(Templates().for_fields(), task.examples[:2], "output-only")
    messages = asking.messages(INSTRUCTION, task.examples[5].input)
    turns = tuple((m["role"], m["content"]) for m in messages)
    said = generate(w, messages[-1]["content"], turns)
    assert said in {o for e in task.examples for o in e.outputs}
    templates = Templates().for_fields()
    demos = templates.demos([(e.input, e.outputs[0]) for e in task.examples[:5]])
    proposed = generate(w, templates.forward_chat.format(demos=demos))
    assert proposed and "simulated LLM server" not in proposed
