"""Best-arm identification over a finite pool: the scheduler (pure, synchronous, seeded).

docs/design.md, "Scheduler". `make_policy(name, n=..., seed=...)` gives a `Policy`; the dispatcher asks it
for pulls with `select(k)` and reports with `observe`, `cancel` and `record`.
"""

from engine.search.factory import POLICIES, make_policy
from engine.search.policy import ArmStats, BasePolicy, Certificate, Policy, Pull

__all__ = ["POLICIES", "ArmStats", "BasePolicy", "Certificate", "Policy", "Pull", "make_policy"]
