"""The simulated world without a server: truth, determinism, convergence, variants."""

from __future__ import annotations

import math

import pytest

from engine.propose import Evidence, Templates, judge_revision
from engine.serving import GenerationRequest
from engine.sim import SimConfig, World
from engine.sim.phrasing import OFF_TASK, instruction_key
from engine.task import load_task, normalise

FORWARD = (
    "I gave a friend an instruction and some inputs. The friend read the instruction and wrote "
    "an output for every one of the inputs. Here are the input-output pairs:\n\n"
)
VARIANT = (
    "Generate a variation of the following instruction while keeping the semantic meaning."
    "\n\nInput: {instruction}\n\nOutput:"
)


def world(seed: int = 0, task: str = "larger_number", **knobs: object) -> World:
    return World([load_task(task, seed=0)], SimConfig(seed=seed, **knobs))  # type: ignore[arg-type]


def ask(w: World, prompt: str, *, api: str = "chat", n: int = 1, temperature: float = 0.0,
        max_tokens: int = 64, stop: tuple[str, ...] = ()) -> list[str]:  # fmt: skip
    request = GenerationRequest(
        api=api, model="sim-1", prompt=prompt, max_tokens=max_tokens, n=n,
        temperature=temperature, stop=stop,
    )  # fmt: skip
    return [g.text for g in w.generate_now(request)]


def scoring_prompt(instruction: str, x: str) -> str:
    return f"{instruction}\n\nInput: {x}\nOutput:"


def accuracy(w: World, instruction: str) -> float:
    task = w.tasks[0].task
    right = 0
    for example in task.examples:
        (answer,) = ask(w, scoring_prompt(instruction, example.input))
        right += normalise(answer) in {normalise(o) for o in example.outputs}
    return right / len(task.examples)


def test_instruction_key_merges_wordings() -> None:
    same = instruction_key("Write the larger of the two numbers.")
    assert instruction_key(' "write the larger of the two numbers" ') == same
    assert instruction_key("The instruction was: Write the larger of the two numbers") == same
    assert instruction_key(" to write the larger of the two numbers.") == same
    assert instruction_key("Write the smaller of the two numbers.") != same


def test_world_is_deterministic_for_a_seed_and_changes_with_it() -> None:
    instructions = ["Write the larger of the two numbers.", "Pick one.", "Answer quickly."]
    a, b, c = world(3), world(3), world(4)
    assert [a.quality(i) for i in instructions] == [b.quality(i) for i in instructions]
    assert [a.quality(i) for i in instructions] != [c.quality(i) for i in instructions]
    examples = a.tasks[0].task.examples[:50]
    answers_a = [ask(a, scoring_prompt("Pick one.", e.input)) for e in examples]
    answers_b = [ask(b, scoring_prompt("Pick one.", e.input)) for e in examples]
    assert answers_a == answers_b
    # the same question twice gets the same answer
    assert answers_a == [ask(a, scoring_prompt("Pick one.", e.input)) for e in examples]


def test_mean_probability_is_the_quality_and_accuracy_converges_to_it() -> None:
    w = world(1)
    n = len(w.tasks[0].task.examples)
    for instruction in ("Write the larger of the two numbers.", "Say a number.", "Pick one."):
        quality = w.quality(instruction)
        mean_p = sum(w.p_correct(instruction, 0, e) for e in range(n)) / n
        assert mean_p == pytest.approx(quality, abs=1e-6)
        bound = 4 * math.sqrt(quality * (1 - quality) / n) + 1e-9
        assert abs(accuracy(w, instruction) - quality) <= bound


def test_difficulty_is_shared_across_instructions() -> None:
    w = world(2)
    n = len(w.tasks[0].task.examples)
    hard = min(range(n), key=lambda e: -w.tasks[0].difficulty[e])
    easy = min(range(n), key=lambda e: w.tasks[0].difficulty[e])
    for instruction in ("Say a number.", "Pick one.", "Write the larger of the two numbers."):
        assert w.p_correct(instruction, 0, easy) > w.p_correct(instruction, 0, hard)


def test_quality_mixture_human_instruction_and_off_task() -> None:
    w = world(5)
    qualities = [w.quality(f"Do the thing number {i}.") for i in range(3000)]
    good = sum(q >= 0.7 for q in qualities) / len(qualities)
    assert 0.07 < good < 0.13
    assert all(0.2 <= q <= 0.6 or 0.7 <= q <= 0.95 for q in qualities)
    assert w.quality("Write the larger of the two numbers.") >= 0.7
    assert all(w.quality(text) <= 0.1 for text in OFF_TASK)
    half = world(5, good_share=0.5)
    shares = [half.quality(f"Do {i}.") >= 0.7 for i in range(1000)]
    assert 0.44 < sum(shares) / 1000 < 0.56


def test_proposals_are_plausible_and_varied() -> None:
    w = world(0)
    task = w.tasks[0].task
    demos = "".join(f"Input: {e.input}\nOutput: {e.outputs[0]}\n\n" for e in task.examples[:5])
    prompt = FORWARD + demos + "The instruction was"
    chat = ask(w, prompt + "\n\nReply with the instruction only.", n=40, temperature=1.0)
    assert len({instruction_key(t) for t in chat}) >= 8
    assert sum("larger" in t or "bigger" in t for t in chat) >= 20
    assert any(instruction_key(t) in {instruction_key(o) for o in OFF_TASK} for t in chat)
    qualities = [w.quality(t) for t in chat]
    assert max(qualities) > min(qualities)
    completed = ask(w, prompt, api="completions", n=10, temperature=1.0, stop=("\n\n",))
    assert all(t.startswith(" to ") for t in completed)
    # asked again, the model samples anew
    assert ask(w, prompt + "\n\nReply with the instruction only.", n=40, temperature=1.0) != chat


def test_variants_stay_near_their_parents() -> None:
    w = world(7)
    parent = "Write the larger of the two numbers."
    for _ in range(5):
        children = ask(w, VARIANT.format(instruction=parent), n=6, temperature=1.0)
        for child in children:
            assert instruction_key(child) != instruction_key(parent)
            assert abs(w.quality(child) - w.quality(parent)) <= 4 * 0.04 + 1e-9
        parent = children[0]
    # a chain of variants drifts slowly: five generations stay within five steps of noise
    assert abs(w.quality(parent) - w.quality("Write the larger of the two numbers.")) < 0.5


def test_unknown_inputs_and_prompts_get_generic_answers_and_truncation() -> None:
    w = world(0)
    assert ask(w, scoring_prompt("Pick one.", "not an input of the task")) == ["I do not know."]
    assert ask(w, "Say OK.", max_tokens=1) == ["OK"]
    assert ask(w, "Say OK.", stop=(".",)) == ["OK"]


def test_echo_logprobs_follow_the_probability_of_being_right() -> None:
    w = world(0)
    task = w.tasks[0].task
    for instruction in ("Write the larger of the two numbers.", "Say a number."):
        for e, example in enumerate(task.examples[:20]):
            prompt = scoring_prompt(instruction, example.input)
            scored = w.score_prompt(prompt + " " + example.outputs[0])
            offsets, offset = [], 0
            for s in scored:
                offsets.append(offset)
                offset += len(s.token)
            answer = [s.logprob for s, o in zip(scored, offsets, strict=True) if o >= len(prompt)]
            p = w.p_correct(instruction, 0, e)
            assert math.exp(sum(answer) / len(answer)) == pytest.approx(p, rel=1e-6, abs=1e-12)
            assert all(v <= 0 for v in answer)
            wrong = w.score_prompt(prompt + " 123456789")
            assert sum(s.logprob for s in wrong[-3:]) / 3 < math.log(max(1 - p, 1e-12)) + 1e-9


def test_insert_proposals_fill_the_middle_from_the_demos_in_the_suffix() -> None:
    w = world(0)
    task = w.tasks[0].task
    demos = "".join(f"Input: {e.input}\nOutput: {e.outputs[0]}\n\n" for e in task.examples[:5])
    request = GenerationRequest(
        api="completions", model="sim-1", prompt="I instructed my friend to", max_tokens=64,
        n=12, temperature=1.0,
        suffix=". The friend read the instruction and wrote an output for every one of the "
        "inputs. Here are the input-output pairs:\n\n" + demos,
    )  # fmt: skip
    filled = [g.text for g in w.generate_now(request)]
    assert all(t.startswith(" ") and not t.startswith(" to ") for t in filled)
    assert sum("larger" in t or "bigger" in t for t in filled) >= 6
    assert max(w.quality(t) for t in filled) > 0.5
    # the same request again samples anew; without demos in the suffix it is no proposal
    assert [g.text for g in w.generate_now(request)] != filled
    plain = GenerationRequest(
        api="completions", model="sim-1", prompt="I instructed my friend to", max_tokens=8,
        suffix=" and then left.",
    )  # fmt: skip
    assert "larger" not in w.generate_now(plain)[0].text


def reflection_prompt(w: World, instruction: str, wrong: int) -> str:
    """The default reflection template with `wrong` of the instruction's wrong answers."""
    task = w.tasks[0].task
    shown = [Evidence(e.input, e.outputs[0], "0", right=False) for e in task.examples[:wrong]] + [
        Evidence(e.input, e.outputs[0], e.outputs[0], right=True) for e in task.examples[-2:]
    ]
    templates = Templates()
    return templates.reflect_chat.format(
        instruction=instruction, examples=templates.evidence(shown)
    )


def test_reflections_that_saw_errors_land_at_or_above_their_parent_more_often_than_paraphrases() -> (
    None
):
    w = world(11)
    parents = [f"Write the larger of the two numbers. Step {i}." for i in range(40)]
    above = {"variant": 0, "reflect": 0, "blind": 0}
    gains: dict[str, list[float]] = {"variant": [], "reflect": [], "blind": []}
    for parent in parents:
        base = w.quality(parent)
        children = {
            "variant": ask(w, VARIANT.format(instruction=parent), temperature=1.0)[0],
            "reflect": ask(w, reflection_prompt(w, parent, 4), temperature=1.0)[0],
            "blind": ask(w, reflection_prompt(w, parent, 0), temperature=1.0)[0],
        }
        for kind, answer in children.items():
            child = answer if kind == "variant" else judge_revision(answer, max_chars=None)[0]
            if not child:
                continue  # now and then a reflection holds no instruction (rejected)
            assert instruction_key(child) != instruction_key(parent)
            gains[kind].append(w.quality(child) - base)
            above[kind] += w.quality(child) >= base
    mean = {kind: sum(values) / len(values) for kind, values in gains.items()}
    # what the world assumes (engine/sim/derived.py): a reflection that saw errors gains a share
    # of the headroom on average; a paraphrase, or a reflection that saw none, gains nothing
    assert mean["reflect"] > 0.03 and abs(mean["variant"]) < 0.03 and abs(mean["blind"]) < 0.05
    assert above["reflect"] / len(gains["reflect"]) > above["variant"] / len(gains["variant"])


def test_a_merge_lands_at_the_mean_of_its_parents() -> None:
    w = world(2)
    first, second = "Write the larger of the two numbers.", "Pick the bigger one. Be careful."
    prompt = Templates().merge_chat.format(
        first=first,
        second=second,
        first_only="Input: 1 2\nExpected output: 2",
        second_only="(none)",
    )
    for answer in ask(w, prompt, n=5, temperature=1.0):
        merged = judge_revision(answer, max_chars=None)[0]
        assert merged.startswith(first[:-1])
        middle = (w.quality(first) + w.quality(second)) / 2
        assert abs(w.quality(merged) - middle) <= 4 * 0.08 + 1e-9
