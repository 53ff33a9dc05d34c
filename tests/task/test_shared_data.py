"""Every file of the APE benchmark data (../shared/data) loads with the counts of its README."""

from __future__ import annotations

from pathlib import Path

from engine.task import load_task, score, split_task

# induce / execute sizes, from the data README
II_SIZES = {
    "active_to_passive": (900, 100), "antonyms": (2592, 100), "cause_and_effect": (26, 25),
    "common_concept": (17, 16), "diff": (4950, 100), "first_word_letter": (3306, 100),
    "informal_to_formal": (15, 15), "larger_animal": (3028, 100), "letters_list": (3306, 100),
    "negation": (904, 100), "num_to_verbal": (9900, 100), "orthography_starts_with": (3000, 100),
    "rhymes": (3000, 100), "second_word_letter": (3306, 100), "sentence_similarity": (3716, 100),
    "sentiment": (1167, 100), "singular_to_plural": (1943, 100), "sum": (4950, 100),
    "synonyms": (2222, 100), "taxonomy_animal": (3000, 100), "translation_en-de": (2808, 100),
    "translation_en-es": (2711, 100), "translation_en-fr": (2811, 100),
    "word_in_context": (4084, 100),
}  # fmt: skip

II_METRICS = {
    "common_concept": "f1", "informal_to_formal": "f1", "orthography_starts_with": "exact_set",
    "taxonomy_animal": "exact_set", "synonyms": "contains",
}  # fmt: skip

BB_SIZES = {
    "causal_judgment": 190, "disambiguation_qa": 258, "dyck_languages": 1000,
    "epistemic_reasoning": 2000, "gender_inclusive_sentences_german": 200, "implicatures": 492,
    "linguistics_puzzles": 2000, "logical_fallacy_detection": 2800, "movie_recommendation": 500,
    "navigate": 1000, "object_counting": 1000, "operators": 211, "presuppositions_as_nli": 735,
    "question_selection": 1590, "ruin_names": 448, "snarks": 181, "sports_understanding": 1000,
    "tense": 286, "timedial": 2550, "winowhy": 2865, "word_sorting": 1900,
    "word_unscrambling": 8917,
}  # fmt: skip

BB_EXACT = {
    "dyck_languages", "gender_inclusive_sentences_german", "linguistics_puzzles",
    "object_counting", "operators", "tense", "word_sorting", "word_unscrambling",
}  # fmt: skip


def test_every_instruction_induction_task_loads_with_its_counts(shared_data: Path) -> None:
    folder = shared_data / "instruction_induction"
    files = sorted((folder / "induce").glob("*.json"))
    assert [p.stem for p in files] == sorted(II_SIZES)
    for path in files:
        task = load_task(str(path))
        assert task.name == path.stem
        assert task.test_examples is not None
        assert (len(task.examples), len(task.test_examples)) == II_SIZES[path.stem], path.stem
        assert task.metric == II_METRICS.get(path.stem, "exact_match")
        assert task.human_instruction and task.human_instruction.strip(), path.stem
        for example in task.examples + task.test_examples:
            assert example.input.strip() and example.key, (path.stem, example)
            assert example.outputs and all(o.strip() for o in example.outputs)
            assert example.choices is None
        # the first accepted answer is right under the task's own metric
        assert all(score(task.metric, e.outputs[0], e) == 1.0 for e in task.examples[:50])
        splits = split_task(task, seed=0)
        assert splits.test == task.test_examples
        assert len(splits.demo) >= 5 and splits.scoring
        assert not {e.key for e in splits.demo} & {e.key for e in splits.scoring}


def test_instruction_induction_quirks_on_the_real_files(shared_data: Path) -> None:
    induce = shared_data / "instruction_induction" / "induce"
    rhymes = load_task(str(induce / "rhymes.json"))
    assert all(e.input not in e.outputs for e in rhymes.examples)
    assert rhymes.examples[0].input == "pig" and "big" in rhymes.examples[0].outputs
    cause = load_task(str(induce / "cause_and_effect.json"))
    assert all(
        e.input.startswith("Sentence 1: ") and e.outputs[0] in e.input for e in cause.examples
    )
    concept = load_task(str(induce / "common_concept.json")).examples[0]
    assert concept.input == "guitars, pendulums, neutrinos"
    german = load_task(str(induce / "translation_en-de.json")).examples[0]
    assert german.input == "time" and german.outputs[0] == "Zeit" and "Uhrzeit" in german.outputs
    similar = load_task(str(induce / "sentence_similarity.json")).examples[0]
    assert similar.outputs == ("5 - perfectly", "5")
    wic = load_task(str(induce / "word_in_context.json"))
    assert {e.outputs for e in wic.examples} == {("same",), ("not the same",)}


def test_every_bigbench_task_loads_with_its_counts(shared_data: Path) -> None:
    files = sorted((shared_data / "bigbench_ii").glob("*/task.json"))
    assert [p.parent.name for p in files] == sorted(BB_SIZES)
    for path in files:
        task = load_task(str(path))
        name = path.parent.name
        assert task.name == name and len(task.examples) == BB_SIZES[name]
        assert task.human_instruction and task.test_examples is None, name
        if name in BB_EXACT:
            assert task.metric == "exact_match", name
            assert all(e.choices is None and e.outputs for e in task.examples)
        else:
            assert task.metric == "multiple_choice", name
            for example in task.examples:
                assert example.choices and set(example.outputs) <= set(example.choices)
                assert score("multiple_choice", example.outputs[0], example) == 1.0, example
        assert all(e.input.strip() for e in task.examples), name
        splits = split_task(task, seed=0)
        assert len(splits.test) >= 45 and splits.scoring and splits.demo


def test_bigbench_choices_follow_append_choices_to_input(shared_data: Path) -> None:
    folder = shared_data / "bigbench_ii"
    ruin = load_task(str(folder / "ruin_names")).examples[0]  # append_choices_to_input: true
    assert ruin.input == (
        "star wars\n  choice: stare wars\n  choice: stariwars\n  choice: stars wars"
        "\n  choice: star was"
    )
    navigate = load_task(str(folder / "navigate")).examples[0]  # false: input alone
    assert "choice:" not in navigate.input and navigate.outputs == ("True",)
