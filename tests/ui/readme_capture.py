"""The text capture of the terminal UI in docs/ui.md: a real study (the built-in task
`larger_number` on the built-in simulator, as `make demo` runs it) rendered by the recording
console at 100x32 from the snapshot nearest `--at` seconds.

Run: `.venv/bin/python -m tests.ui.readme_capture [--at 8]` (about ten seconds)."""

from __future__ import annotations

import argparse
from pathlib import Path
from tempfile import TemporaryDirectory

import anyio

from engine.app import execute, prepare
from engine.settings import StudyConfig
from engine.study.snapshot import StudyControl, StudySnapshot
from engine.ui.live import follow
from tests.ui.snapshots import render_screen


def capture(at_s: float, width: int = 100, height: int = 32) -> str:
    snapshots: list[StudySnapshot] = []

    class Keep:
        control: StudyControl | None = None

        def attach(self, control: StudyControl) -> None:
            self.control = control

        def update(self, snapshot: StudySnapshot) -> None:
            snapshots.append(snapshot)
            if snapshot.elapsed_s > at_s + 0.5 and self.control is not None:
                self.control.cancel()  # seen enough

    with TemporaryDirectory() as folder:
        config = StudyConfig.of(
            task="larger_number",
            sim_latency_s=0.05,
            scoring_size=200,
            concurrency=32,
            rpm=6000,
            budget_scoring_calls=8000,
            budget_seconds=300,
            journal=str(Path(folder) / "capture.jsonl"),
            no_cache=True,
        )
        keep = Keep()
        anyio.run(
            lambda: execute(prepare(config), say=lambda _: None, watch=lambda s: follow(keep, s))
        )
    running = [s for s in snapshots if not s.done] or snapshots
    chosen = min(running, key=lambda s: abs(s.elapsed_s - at_s))
    return render_screen(chosen, width, height, selected=chosen.winner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--at", type=float, default=8.0, help="seconds into the study")
    args = parser.parse_args()
    print(capture(args.at), end="")


if __name__ == "__main__":
    main()
