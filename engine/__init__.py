"""ape-engine: Automatic Prompt Engineer (Zhou et al., ICLR 2023) as an async, long-lived engine.

A proposal model writes candidate instructions from demos, a target model executes them, and a
best-arm-identification scheduler spends the scoring budget where it decides the winner.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
