"""The planner contract, checked on every registered planner (as LeRobot tests every policy), on real
observations of its domain (tests/planners/observations.py): declarations, plan validity, plan_batch against
single plans, seeding, checkpoints, oracles and the domain check.

Learned planners come from the shipped checkpoints where there is one, else untrained and small with torch's
seed fixed; every other planner as `planners.load(name)` builds it.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import planners
from planners import (
    DRIVE_PLAN,
    Domain,
    DrivePlanner,
    DrivePrivileged,
    OracleError,
    Plan,
    PlanFrame,
    Planner,
    PlanSpec,
    WrongDomainError,
)
from planners.checkpoint import CheckpointError, export_single_file, load_checkpoint, save_checkpoint
from planners.nav_base import NAV_PLAN, NavPrivileged
from planners.registry import planner_class
from scenes import ValidationError
from scenes.errors import DiffplanError
from tests.planners.golden import CHECKPOINTS
from tests.planners.observations import drive_observations, drive_scenes, nav_cases

SHIPPED = {"diffusiondrive": "diffusiondrive-synth", "ego-mlp": "ego-mlp-synth", "navdp": "navdp-synth",
           "pstl": "pstl-synth"}
SMALL = {  # untrained, small: values of the model config's fields
    "diffusion-policy": {"d_model": 32, "depth": 1, "heads": 2, "ffn_dim": 64, "decoder_layers": 1,
                         "sampling_steps": 4},
    "regression": {"d_model": 32, "depth": 1, "heads": 2, "ffn_dim": 64, "decoder_layers": 1},
    "pstl-ctg": {"d_model": 32, "depth": 1, "heads": 2, "ffn_dim": 64, "hidden_dim": 64},
    "pstl-vae": {"d_model": 32, "depth": 1, "heads": 2, "ffn_dim": 64, "hidden_dim": 64, "latent_dim": 16},
}
STOCHASTIC = {"diffusiondrive", "diffusion-policy", "navdp",  # another seed gives another plan
              "pstl", "pstl-ctg", "pstl-vae"}
SPECS = {Domain.DRIVING: DRIVE_PLAN, Domain.NAVIGATION: NAV_PLAN}
# Planners registered by other test modules (when they happen to be imported first) are not ours to check.
NAMES = [name for name in planners.available_planners()
         if not (cls := planner_class(name)) or not cls.__module__.startswith("tests.")]


def build(name: str) -> Planner:
    """A fresh planner `name` (see the module docstring)."""
    if name in SHIPPED:
        return planners.load(CHECKPOINTS[SHIPPED[name]])
    if name in SMALL:
        cls = planner_class(name)
        assert cls is not None
        torch.manual_seed(0)
        return cls(**SMALL[name])
    return planners.load(name)


@cache
def shared(name: str) -> Planner:
    """One planner per name for the tests that do not care about a fresh instance (each resets it)."""
    return build(name)


def inputs(planner: Planner, count: int = 2) -> list[tuple[Any, Any]]:
    """(observation, privileged context) pairs of the planner's domain."""
    if planner.domain is Domain.DRIVING:
        return [(scene.observation(), DrivePrivileged(scene)) for scene in drive_scenes()[:count]]
    return [(case.observation, NavPrivileged(case.world, case.pose.copy(), case.goal.copy(), case.robot))
            for case in nav_cases()[:count]]


def plan_of(planner: Planner, observation: Any, context: Any) -> Plan:
    """What an evaluator gets: the privileged hook (only oracles read the context)."""
    return planner.plan_privileged(observation, context)


def assert_same(a: Plan, b: Plan) -> None:
    """Bit-identical poses, candidates and scores."""
    assert np.array_equal(a.trajectory.poses, b.trajectory.poses)
    for x, y in ((a.candidates, b.candidates), (a.scores, b.scores)):
        assert (x is None) == (y is None) and (x is None or np.array_equal(x, y))


def differs(a: Plan, b: Plan) -> bool:
    return not np.array_equal(a.trajectory.poses, b.trajectory.poses) or (
        a.candidates is not None and not np.array_equal(a.candidates, b.candidates))


@pytest.mark.parametrize("name", NAMES)
def test_declares_name_domain_spec_privilege_and_seed(name):
    planner = shared(name)
    assert planner.name == name
    assert planner.plan_spec == SPECS[planner.domain]
    assert planner.plan_spec.horizon_s == pytest.approx(4.0 if planner.domain is Domain.DRIVING else 6.0)
    assert isinstance(planner.privileged, bool) and isinstance(planner.seed, int)
    planner.seed = 5
    assert planner.seed == 5


@pytest.mark.parametrize("name", NAMES)
def test_plans_meet_the_declared_spec_and_are_finite(name):
    planner = shared(name)
    planner.seed = 0
    for observation, context in inputs(planner):
        plan = plan_of(planner, observation, context).validate(planner.plan_spec)
        assert plan.spec == planner.plan_spec
        assert plan.trajectory.poses.dtype == np.float64 and np.isfinite(plan.trajectory.poses).all()
        if plan.candidates is not None:
            assert plan.candidates.shape[1:] == (planner.plan_spec.num_poses, 3)
            assert np.isfinite(plan.candidates).all()
            assert plan.scores is not None and plan.scores.shape == plan.candidates.shape[:1]


@pytest.mark.parametrize("name", NAMES)
def test_plan_batch_gives_the_single_plans(name):
    """Bit for bit for rule-based planners and for a batch of one; learned deterministic planners' batches
    agree to float32 rounding (a batched matrix product sums in another order); stochastic planners draw a
    batch's noise at once, so only a batch of one is the single plan."""
    planner = shared(name)
    pairs = inputs(planner)
    observations = [observation for observation, _ in pairs]
    if planner.privileged:
        with pytest.raises(OracleError):
            planner.plan_batch(observations)
        return
    planner.seed = 1
    single = planner.plan(observations[0])
    planner.reset()
    assert_same(planner.plan_batch(observations[:1])[0], single)
    planner.reset()
    batch = planner.plan_batch(observations)
    planner.reset()
    singles = [planner.plan(observation) for observation in observations]
    assert len(batch) == len(observations) and planner.plan_batch([]) == []
    if name in STOCHASTIC:
        return
    for batched, single in zip(batch, singles, strict=True):
        if isinstance(planner, planners.learned.LearnedPlanner):
            np.testing.assert_allclose(batched.trajectory.poses, single.trajectory.poses, rtol=0, atol=1e-4)
        else:
            assert_same(batched, single)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_plans(name):
    first, second = build(name), shared(name)
    pairs = inputs(first)
    for planner in (first, second):
        planner.seed = 3
    runs = [[plan_of(p, *pair) for pair in pairs] for p in (first, second)]
    second.reset()
    runs.append([plan_of(second, *pair) for pair in pairs])
    for plans in runs[1:]:
        for a, b in zip(runs[0], plans, strict=True):
            assert_same(a, b)
    second.seed = 4
    other = [plan_of(second, *pair) for pair in pairs]
    if name in STOCHASTIC:
        assert all(differs(a, b) for a, b in zip(runs[0], other, strict=True))
    else:  # deterministic planners ignore the seed
        for a, b in zip(runs[0], other, strict=True):
            assert_same(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_gives_identical_plans(name, tmp_path):
    planner = shared(name)
    if not isinstance(planner, planners.learned.LearnedPlanner):
        with pytest.raises(CheckpointError, match="has no weights"):
            save_checkpoint(planner, tmp_path / "checkpoint")
        return
    copies = [load_checkpoint(save_checkpoint(planner, tmp_path / "checkpoint")),
              load_checkpoint(export_single_file(planner, tmp_path / "single.safetensors"))]
    pairs = inputs(planner)
    planner.seed = 2
    expected = [plan_of(planner, *pair) for pair in pairs]
    for copy in copies:
        assert type(copy) is type(planner) and copy.name == name and copy.domain is planner.domain
        copy.seed = 2
        for pair, plan in zip(pairs, expected, strict=True):
            assert_same(plan_of(copy, *pair), plan)


@pytest.mark.parametrize("name", NAMES)
def test_oracles_plan_only_with_their_context_and_others_ignore_it(name):
    planner = shared(name)
    planner.seed = 0
    observation, context = inputs(planner, 1)[0]
    if planner.privileged:
        with pytest.raises(OracleError) as refused:
            planner.plan(observation)
        assert isinstance(refused.value, DiffplanError)
        message = str(refused.value)
        assert "\n" not in message and repr(name) in message and "plan_privileged" in message
        planner.reset()
        plan_of(planner, observation, context).validate(planner.plan_spec)
    else:
        planner.reset()
        with_context = planner.plan_privileged(observation, context)
        planner.reset()
        assert_same(with_context, planner.plan(observation))


@pytest.mark.parametrize("name", NAMES)
def test_a_planner_of_the_other_domain_is_refused(name):
    planner = shared(name)
    assert planners.require_domain(planner, planner.domain, "this test") is planner
    other = Domain.NAVIGATION if planner.domain is Domain.DRIVING else Domain.DRIVING
    with pytest.raises(WrongDomainError) as refused:
        planners.require_domain(planner, other, "eval x")
    assert str(refused.value) == (f"planner {name!r} plans for {planner.domain.value}; eval x needs a "
                                  f"{other.value} planner")


def test_plan_validate_checks_horizon_interval_and_frame_against_a_spec():
    plan = planners.load("constant-velocity").plan(drive_observations(1)[0])
    assert plan.validate() is plan and plan.validate(DRIVE_PLAN) is plan and plan.spec.horizon_s == 4.0
    with pytest.raises(ValidationError, match=r"shape \(8, 3\) is not \(24, 3\)"):
        plan.validate(NAV_PLAN)
    with pytest.raises(ValidationError, match="dt: 0.5 s, expected 0.25 s"):
        plan.validate(PlanSpec(8, 0.25, PlanFrame.EGO))
    with pytest.raises(ValidationError, match="Plan.spec"):
        plan.validate(PlanSpec(8, 0.5, PlanFrame.ROBOT))


def test_a_planner_without_a_domain_cannot_register():
    class Nowhere(Planner):
        def plan(self, observation):
            raise AssertionError("unused")

    with pytest.raises(TypeError, match="declares no domain"):
        planners.register_planner("test-nowhere")(Nowhere)
    assert "test-nowhere" not in planners.available_planners()
    assert isinstance(DrivePlanner.plan_spec, PlanSpec)


def test_the_observations_are_of_each_domain():
    assert len(drive_observations(2)) == 2 and len(nav_cases()) == 2
    assert {shared(name).domain for name in ("constant-velocity", "dwa")} == set(Domain)


@pytest.mark.parametrize(("command", "planner", "message"), [
    (["navsim", "--scenes", "no-such-dataset"], "navdp",
     "error: planner 'navdp' plans for navigation; eval navsim needs a driving planner"),
    (["pointnav", "--episodes", "no-such-episodes.json.gz"], "pdm-closed",
     "error: planner 'pdm-closed' plans for driving; eval pointnav needs a navigation planner"),
])
def test_the_cli_refuses_a_planner_of_the_other_domain_before_any_work(command, planner, message):
    exe = Path(sys.executable).parent / "diffplan"
    result = subprocess.run([str(exe), "eval", command[0], "--planner", planner, *command[1:]], check=False,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [message]
