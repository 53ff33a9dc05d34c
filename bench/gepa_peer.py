"""The peer of bench/proposals.py: DSPy's GEPA (Agrawal et al., "GEPA: Reflective Prompt
Evolution Can Outperform Reinforcement Learning", ICLR 2026; `dspy.GEPA`) optimizing the
instruction of a one-step predictor on one task, with the engine's pools, prompt and metric.

It runs in its own environment (bench/.venv-dspy, ``make bench-dspy``: DSPy is a bench-only
dependency, never the engine's), with the engine installed beside it for three things, so that
both sides are measured alike:

- the pools: `split_task` with the study's seed and sizes. GEPA's train set (its reflection
  minibatches) is the demo pool the engine's proposer sees; its validation set (its Pareto
  front and its pick) is the scoring pool the engine's scheduler scores on;
- the prompt: a DSPy adapter that asks the target exactly as the engine's `ScoringPrompt`
  does (the output-only system message, the same demo turns, the scoring template with the
  candidate instruction; greedy, at most 16 tokens, stop at the end of the line);
- the metric: the task's metric after `read_answer`, as `ClientScorer` reads an answer; the
  feedback GEPA reflects on names the expected output and the answer.

The task model is the 0.5B server, the reflection model the 1.5B one (the engine's target and
proposer), both through their OpenAI-compatible routes (LiteLLM ``openai/<model>`` with
``api_base``); GEPA's budget is ``--max-metric-calls`` target calls (what the engine spent on
the task). It starts from DSPy's default instruction for ``input -> output`` (the engine
starts from none). It writes its pick and what it spent to ``--out``; bench/proposals.py scores
the pick on the held-out test examples with the engine's own scorer.

    bench/.venv-dspy/bin/python bench/gepa_peer.py --task PATH --max-metric-calls 200 \\
        --target-url URL --target-model NAME --reflection-url URL --reflection-model NAME \\
        --out result.json
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dspy

from engine.propose import Templates
from engine.study.prompting import ScoringPrompt, pick_demos, scoring_demo_count
from engine.task import load_task, split_task
from engine.task.metrics import metric_function, read_answer
from engine.task.types import Example


class EngineAdapter(dspy.Adapter):
    """Asks the target as the engine's scorer does; the whole answer is the output field."""

    def __init__(self, asking: ScoringPrompt) -> None:
        super().__init__()
        self.asking = asking
        self.calls = 0
        self._lock = threading.Lock()

    def format(self, signature: Any, demos: list[dict[str, Any]], inputs: dict[str, Any]) -> Any:
        return self.asking.messages(signature.instructions, inputs["input"])

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        return {"output": completion}

    def __call__(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: Any,
                 inputs: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
        with self._lock:
            self.calls += 1
        outputs = lm(messages=self.format(signature, demos, inputs), **lm_kwargs)
        texts = [o.get("text") if isinstance(o, dict) else o for o in outputs]
        return [self.parse(signature, text or "") for text in texts]  # empty: scored as wrong


def feedback(answer: str, example: Example, score: float) -> str:
    accepted = ", ".join(repr(o) for o in example.outputs[:5])
    verdict = "Correct" if score >= 1 else ("Partly correct" if score > 0 else "Wrong")
    return f"{verdict} (score {score:.2f}). The answer was {answer!r}; accepted: {accepted}."


def run(args: argparse.Namespace) -> dict[str, Any]:
    task = load_task(args.task, seed=args.seed)
    splits = split_task(
        task, seed=args.seed, scoring_size=args.scoring_size, test_size=args.test_size
    )
    shown = pick_demos(splits.demo, scoring_demo_count(args.scoring_demos, "chat"), args.seed)
    grade = metric_function(task.metric)
    examples: dict[str, Example] = {}

    def dataset(pool: tuple[Example, ...], name: str) -> list[dspy.Example]:
        rows = []
        for index, example in enumerate(pool):
            key = f"{name}-{index}"
            examples[key] = example
            rows.append(dspy.Example(input=example.input, key=key).with_inputs("input"))
        return rows

    def metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None,
               pred_trace: Any = None) -> dspy.Prediction:  # fmt: skip
        example = examples[gold.key]
        answer = (getattr(pred, "output", None) or "").strip()
        score = grade(read_answer(answer, task.metric), example)
        return dspy.Prediction(score=score, feedback=feedback(answer, example, score))

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    adapter = EngineAdapter(ScoringPrompt(Templates(), shown, "output-only"))
    target = dspy.LM(f"openai/{args.target_model}", api_base=args.target_url, api_key="local",
                     temperature=0.0, max_tokens=16, stop=["\n"], cache=False,
                     timeout=900, num_retries=3)  # fmt: skip
    reflection = dspy.LM(f"openai/{args.reflection_model}", api_base=args.reflection_url,
                         api_key="local", temperature=1.0, max_tokens=args.reflection_tokens,
                         cache=False, timeout=1800, num_retries=3)  # fmt: skip
    dspy.configure(lm=target, adapter=adapter)
    program = dspy.Predict("input -> output")
    seed_instruction = program.signature.instructions
    optimizer = dspy.GEPA(metric=metric, max_metric_calls=args.max_metric_calls,
                          reflection_lm=reflection, num_threads=4, track_stats=True,
                          seed=args.seed)  # fmt: skip
    began = time.perf_counter()
    optimized = optimizer.compile(
        program, trainset=dataset(splits.demo, "demo"), valset=dataset(splits.scoring, "scoring")
    )
    details = optimized.detailed_results
    return {
        "instruction": optimized.predictors()[0].signature.instructions,
        "seed_instruction": seed_instruction,
        "human": task.human_instruction or "",
        "metric_calls": details.total_metric_calls,
        "target_calls": adapter.calls,
        "reflection_calls": len(reflection.history),
        "candidates": len(details.candidates),
        "val_score": details.val_aggregate_scores[details.best_idx],
        "full_val_evals": details.num_full_val_evals,
        "reason": f"GEPA's budget of {args.max_metric_calls} metric calls",
        "seconds": time.perf_counter() - began,
        "versions": {name: version(name) for name in ("dspy", "gepa", "litellm")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--task", required=True, help="a task file (instruction induction or BIG-Bench)")
    add("--seed", type=int, default=0)
    add("--scoring-size", type=int, default=40)
    add("--test-size", type=int, default=50)
    add("--scoring-demos", type=int, default=None, help="demo turns (default: the chat default)")
    add("--max-metric-calls", type=int, required=True, help="GEPA's target-call budget")
    add("--target-url", required=True)
    add("--target-model", required=True)
    add("--reflection-url", required=True)
    add("--reflection-model", required=True)
    add("--reflection-tokens", type=int, default=1024, help="most tokens of one reflection")
    add("--out", required=True)
    args = parser.parse_args(argv)
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "versions"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
