"""Deterministic simulation of real members: simulated disk, network, clock and clients.

    simulator.Simulator(seed, "3+1" | "5" | "standalone").run(steps)

raises invariants.InvariantBroken with the seed and step; the same seed replays exactly
(`zkpy simulate --seed S --config C`).
"""

from .invariants import InvariantBroken
from .simulator import CONFIGS, Faults, Simulator, run_schedule

__all__ = ["CONFIGS", "Faults", "InvariantBroken", "Simulator", "run_schedule"]
