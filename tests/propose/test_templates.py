"""Templates as data: defaults, overrides from TOML or JSON, and errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.propose import PLACEHOLDERS, Templates, load_templates


def test_the_defaults_are_the_papers_templates() -> None:
    templates = Templates()
    demos = templates.demos([("3 5", "5"), ("9 2", "9")])
    assert demos == "Input: 3 5\nOutput: 5\n\nInput: 9 2\nOutput: 9"
    forward = templates.forward.format(demos=demos)
    assert forward.startswith("I gave a friend an instruction and some inputs.")
    assert forward.endswith(demos + "\n\nThe instruction was")
    assert templates.forward_chat.endswith(
        "Reply with the instruction only, on one line, in this form:\nInstruction: <the instruction>"
    )
    assert templates.variant.format(instruction="Add.").startswith(
        "Generate a variation of the following instruction while keeping the semantic meaning."
    )
    assert (
        templates.scoring.format(instruction="Add.", input="3 5") == "Add.\n\nInput: 3 5\nOutput:"
    )


def test_insert_splits_around_the_instruction_slot() -> None:
    prompt, suffix = Templates().insert_parts("Input: a\nOutput: b")
    assert prompt == "I instructed my friend to "
    assert suffix.startswith(". The friend read the instruction")
    assert suffix.endswith("input-output pairs:\n\nInput: a\nOutput: b")
    braces = Templates(insert="{{instruction}} {demos} then {instruction} end")
    assert braces.insert_parts("D") == ("{instruction} D then ", " end")


def test_a_toml_file_overrides_some_templates(tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    path.write_text(
        'scoring = "Instruction: {instruction}\\nQ: {input}\\nA:"\n'
        "variant = '''Paraphrase: {instruction}'''\n"
    )
    templates = load_templates(path)
    assert templates.scoring == "Instruction: {instruction}\nQ: {input}\nA:"
    assert templates.variant == "Paraphrase: {instruction}"
    assert templates.forward == Templates().forward
    assert templates.fingerprint() != Templates().fingerprint()


def test_a_json_file_works_too(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"demo": "Q: {input} A: {output}", "demo_separator": "\\n"}')
    assert load_templates(path).demos([("x", "y"), ("z", "w")]) == "Q: x A: y\nQ: z A: w"
    assert load_templates(None) == Templates()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            'forward = "Pairs follow. The instruction was"',
            r"field 'forward' lacks the placeholder \{demos\}",
        ),
        (
            'variant = "Reword {instruction} for {audience}"',
            r"field 'variant' has the placeholder \{audience\}",
        ),
        (
            'insert = "{instruction} {demos} {instruction}"',
            r"field 'insert' must hold \{instruction\} exactly once",
        ),
        ('scoring = "{instruction} {input"', r"field 'scoring' is not a valid template"),
        ("scoring = 3", r"field 'scoring' must be a string"),
        ('forwrd = "{demos}"', r"unknown template 'forwrd'"),
        ("forward = ", r"not valid TOML"),
    ],
)
def test_a_bad_template_names_the_file_and_the_field(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "my-templates.toml"
    path.write_text(content + "\n")
    with pytest.raises(ConfigError, match=r"templates file '.*my-templates\.toml': " + message):
        load_templates(path)


def test_other_file_kinds_and_missing_files_are_refused(tmp_path: Path) -> None:
    yaml = tmp_path / "t.yaml"
    yaml.write_text("forward: x\n")
    with pytest.raises(ConfigError, match=r"must end in \.toml or \.json"):
        load_templates(yaml)
    with pytest.raises(ConfigError, match="cannot read it"):
        load_templates(tmp_path / "absent.toml")
    bad = tmp_path / "t.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a table"):
        load_templates(bad)


def test_every_field_has_its_placeholders_declared() -> None:
    assert set(PLACEHOLDERS) == {f for f in Templates.__dataclass_fields__}
