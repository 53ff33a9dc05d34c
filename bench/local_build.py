"""What the portable llama.cpp build costs against a native one, on this machine.

`make install-local` compiles llama.cpp for x86-64-v3 (AVX2, FMA, F16C, BMI2) so that it runs on
every machine CI may land on; a native build (pip's default, ``-DGGML_NATIVE=ON``) uses every
instruction this CPU advertises and may be faster here, and dies by SIGILL elsewhere. This bench
builds the native wheel once (into bench/results/, keyed by this CPU's flags; about ten minutes),
installs it into a folder of its own, and measures SmolLM2 scoring calls per second on one
thread with each build, in child processes taking turns (the machine's noise falls on both):

- exec: a greedy answer of at most 16 tokens, stopped at a newline (execution accuracy);
- logprob: the log-probabilities of prompt + accepted answer (log-probability scoring).

The prompts are the built-in ``antonyms`` task's scoring template under one instruction, so
consecutive calls share the instruction's prefix, as a study's calls to one candidate do.

    .venv/bin/python bench/local_build.py              # 3 rounds of 40 calls of each kind
    .venv/bin/python bench/local_build.py --rounds 5 --calls 80

Writes bench/results/local_build.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
LLAMA_CPP = "llama-cpp-python==0.3.36"
NATIVE_OPTIONS = "-DGGML_NATIVE=ON"

CHILD = """
import json, sys, time
from engine.local import LocalModel, resolve_model_path
from engine.local.runnable import system_info
from engine.serving.protocol import GenerationRequest
from engine.task import load_task
calls = int(sys.argv[1])
model = LocalModel(resolve_model_path("smollm2"), threads=1, context=512, name="smollm2")
task = load_task("antonyms", seed=0)
instruction = "Write the antonym of the word."
prompts = [(f"{instruction}\\n\\nInput: {e.input}\\nOutput:", e.outputs[0])
           for e in task.examples[:calls]]
started = time.perf_counter()
for prompt, _ in prompts:
    model.generate(GenerationRequest(api="completions", model="smollm2", prompt=prompt,
                                     max_tokens=16, temperature=0.0, stop=("\\n",)))
exec_s = time.perf_counter() - started
started = time.perf_counter()
for prompt, answer in prompts:
    model.prompt_logprobs(prompt + " " + answer, 0)
logprob_s = time.perf_counter() - started
import llama_cpp
print(json.dumps({"exec": len(prompts) / exec_s, "logprob": len(prompts) / logprob_s,
                  "system_info": llama_cpp.llama_print_system_info().decode().strip(),
                  "llama_cpp": llama_cpp.__file__}))
"""


def cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_site() -> Path:
    """A folder holding llama_cpp built natively for this CPU (built and installed once)."""
    key = hashlib.sha256(f"{LLAMA_CPP} {NATIVE_OPTIONS} {cpu_flags()}".encode()).hexdigest()[:16]
    wheels = RESULTS / f"native-wheel-{key}"
    site = RESULTS / f"native-site-{key}"
    if (site / "llama_cpp").is_dir():
        return site
    if not list(wheels.glob("*.whl")):
        print(f"building llama.cpp natively for this CPU into {wheels} (about ten minutes)")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-cache-dir", "--no-deps",
             "--no-binary", "llama-cpp-python", "--wheel-dir", str(wheels), LLAMA_CPP],
            env={**os.environ, "CMAKE_ARGS": NATIVE_OPTIONS,
                 "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)},
            check=True,
        )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         *map(str, wheels.glob("*.whl"))],
        check=True,
    )  # fmt: skip
    return site


def measure(calls: int, site: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(calls)],
        capture_output=True, text=True, env=env, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {done.returncode}: {last}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    site = native_site()
    runs: dict[str, list[dict[str, Any]]] = {"portable": [], "native": []}
    for round_number in range(args.rounds):
        for name, where in (("portable", None), ("native", site)):
            run = measure(args.calls, where)
            runs[name].append(run)
            print(f"round {round_number + 1} {name}: {run}")
    summary: dict[str, Any] = {"cpu": cpu_model(), "calls": args.calls, "rounds": args.rounds}
    for name, results in runs.items():
        good = [r for r in results if "error" not in r]
        summary[name] = {
            "system_info": good[0]["system_info"] if good else None,
            "error": next((r["error"] for r in results if "error" in r), None),
            **{
                kind: statistics.median(r[kind] for r in good) if good else None
                for kind in ("exec", "logprob")
            },
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "local_build.json").write_text(json.dumps({**summary, "runs": runs}, indent=2))
    print(f"\n{summary['cpu']}, SmolLM2-135M Q4_1, one thread, {args.calls} calls x "
          f"{args.rounds} rounds (median calls/s)\n")  # fmt: skip
    print("| build | exec calls/s | logprob calls/s |")
    print("|---|---|---|")
    for name in ("portable", "native"):
        row = summary[name]
        if row["exec"] is None:
            print(f"| {name} | {row['error']} | |")
        else:
            print(f"| {name} | {row['exec']:.1f} | {row['logprob']:.1f} |")
    if summary["native"]["exec"] and summary["portable"]["exec"]:
        for kind in ("exec", "logprob"):
            ratio = summary["portable"][kind] / summary["native"][kind]
            print(f"portable / native, {kind}: {ratio:.3f}")


if __name__ == "__main__":
    main()
