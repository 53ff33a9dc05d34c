"""How the target model is asked: the paper's instruction + in-context prompt on completions,
the output-only system message and demo turns on chat, and demos drawn from the demo pool."""

from __future__ import annotations

from engine.propose import Templates
from engine.propose.templates import FIRST_SCORING_SYSTEM
from engine.study.prompting import OUTPUT_ONLY, ScoringPrompt, pick_demos, scoring_demo_count
from engine.task.types import Example

DEMOS = (Example("hot", ("cold",)), Example("up", ("down",)))


def test_completions_put_the_demos_between_the_instruction_and_the_input() -> None:
    asking = ScoringPrompt(Templates(), DEMOS)
    assert asking.completion("Write the opposite.", "wet") == (
        "Write the opposite.\n\nInput: hot\nOutput: cold\n\nInput: up\nOutput: down"
        "\n\nInput: wet\nOutput:"
    )
    assert ScoringPrompt(Templates()).completion("Add.", "1 2") == "Add.\n\nInput: 1 2\nOutput:"


def test_chat_gives_the_demos_as_earlier_turns_after_the_output_only_message() -> None:
    messages = ScoringPrompt(Templates(), DEMOS, "output-only").messages(
        "Write the opposite.", "wet"
    )
    assert messages == [
        {"role": "system", "content": OUTPUT_ONLY},
        {"role": "user", "content": "Write the opposite.\n\nInput: hot\nOutput:"},
        {"role": "assistant", "content": "cold"},
        {"role": "user", "content": "Input: up\nOutput:"},
        {"role": "assistant", "content": "down"},
        {"role": "user", "content": "Input: wet\nOutput:"},
    ]
    plain = ScoringPrompt(Templates(), (), "plain").messages("Add.", "1 2")
    assert plain == [{"role": "user", "content": "Add.\n\nInput: 1 2\nOutput:"}]


def test_demos_are_drawn_once_per_seed_and_default_by_api() -> None:
    pool = tuple(Example(str(i), (str(i),)) for i in range(20))
    assert pick_demos(pool, 3, 7) == pick_demos(pool, 3, 7)
    assert len(set(pick_demos(pool, 3, 7))) == 3
    assert pick_demos(pool, 0, 7) == () and len(pick_demos(pool[:2], 5, 1)) == 2
    assert (scoring_demo_count(None, "chat"), scoring_demo_count(None, "completions")) == (3, 0)
    assert scoring_demo_count(1, "chat") == 1


def test_the_system_message_is_a_template_and_a_new_one_is_another_cache_key() -> None:
    first = ScoringPrompt(Templates(scoring_system=FIRST_SCORING_SYSTEM), (), "output-only")
    assert "system" not in first.identity()  # the keys of earlier studies still match
    default = ScoringPrompt(Templates(), (), "output-only")
    assert default.identity()["system"] == OUTPUT_ONLY != FIRST_SCORING_SYSTEM
    own = ScoringPrompt(
        Templates(scoring_system="Answer with the output alone."), (), "output-only"
    )
    assert own.messages("Add.", "1 2")[0] == {
        "role": "system",
        "content": "Answer with the output alone.",
    }
    assert own.identity()["system"] == "Answer with the output alone."
    plain = ScoringPrompt(Templates(scoring_system="Answer with the output alone."), (), "plain")
    assert "system" not in plain.identity()
