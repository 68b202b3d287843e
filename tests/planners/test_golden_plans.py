"""Golden plans: the shipped checkpoints and the rule-based planners give the plans recorded in golden_plans.json
(see tests/planners/golden.py), to GOLDEN_ATOL, on fixed synthetic observations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.planners.golden import GOLDEN_ATOL, golden_plans, observation_digests

RECORDED = json.loads((Path(__file__).parent / "golden_plans.json").read_text())


@pytest.fixture(scope="module")
def plans() -> dict:
    return golden_plans()


def test_the_observations_are_the_recorded_ones():
    assert observation_digests() == RECORDED["observations"], "the observations changed, not the planners"


@pytest.mark.parametrize("case", sorted(RECORDED["plans"]))
def test_plans_equal_the_recorded_ones(plans, case):
    for got, expected in zip(plans[case], RECORDED["plans"][case], strict=True):
        for field in ("poses", "candidates", "scores"):
            assert (got[field] is None) == (expected[field] is None), field
            if expected[field] is not None:
                np.testing.assert_allclose(got[field], expected[field], rtol=0, atol=GOLDEN_ATOL, err_msg=field)
