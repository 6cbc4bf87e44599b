"""Shared fixtures: the small scenario and its simulated days, run once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs import load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "configs" / "scenarios"


@pytest.fixture(scope="session")
def small():
    """configs/scenarios/small.yaml: 20 agents, 09:00–13:00, one incident of each kind."""
    return load_scenario(SCENARIOS / "small.yaml")


@pytest.fixture(scope="session")
def small_days(small):
    """The small day simulated under every shipped policy, on the scenario's seed."""
    from sim.run import simulate

    return {name: simulate(small, name) for name in small.policies}


@pytest.fixture(scope="session")
def small_day(small_days, small):
    """The small day under the default (baseline) policy."""
    return small_days[small.default_policy]
