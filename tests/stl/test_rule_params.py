"""Typed rule parameters: one record per rule, RuleParams, its JSON form (params files) and their errors."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from stl.calibrate import CalibratedParams, ParamsError
from stl.formula import Param
from stl.rules import (
    DEFAULT_PARAMS,
    RULES,
    ComfortParams,
    LaneChangeParams,
    LaneKeepingParams,
    RuleParams,
    RuleParamsError,
    SpeedBandParams,
    UnknownRuleError,
    rule_set,
)

HERE = Path(__file__).resolve().parent
# DEFAULTS as stl.calibrate spelled them before the typed records: the values must not change
OLD_DEFAULTS = {
    "speed_band": {"v_min": 0.0, "v_max": 15.0}, "lane_keeping": {"d_max": 0.5, "h_max": 0.2},
    "lane_change_left": {"d_band": 0.5, "h_max": 0.2}, "lane_change_right": {"d_band": 0.5, "h_max": 0.2},
    "safe_distance": {"d_safe": 0.5}, "stop_before_line": {"d_stop": 0.0}, "reach_goal": {"r_goal": 2.0},
    "comfort": {"a_max": 4.0, "j_max": 10.0, "w_max": 0.5},
}


def test_records_match_the_registry_and_the_templates():
    assert tuple(f.name for f in fields(RuleParams)) == tuple(RULES)
    for name, rule in RULES.items():
        formula_params = {node.bound.name for node in rule.formula(40).nodes()
                          if isinstance(getattr(node, "bound", None), Param)}
        assert formula_params == set(rule.params), name
        assert rule.lower_bounds <= set(rule.params)


def test_defaults_and_json_round_trip():
    assert DEFAULT_PARAMS.to_json() == OLD_DEFAULTS
    assert list(DEFAULT_PARAMS.to_json()) == list(RULES)
    assert RuleParams.from_json(OLD_DEFAULTS) == DEFAULT_PARAMS.validate()
    partial = RuleParams.from_json({"comfort": {"a_max": 3, "j_max": 4.5, "w_max": 0.4}})
    assert partial.names == ("comfort",) and partial.comfort == ComfortParams(3, 4.5, 0.4)
    assert partial.to_json() == {"comfort": {"a_max": 3, "j_max": 4.5, "w_max": 0.4}}
    assert RuleParams().to_json() == {} and RuleParams().names == ()


def test_only_updated_and_with_rule():
    keep = DEFAULT_PARAMS.only(["speed_band", "lane_keeping"])
    assert keep.names == ("speed_band", "lane_keeping")
    assert RuleParams(comfort=ComfortParams(1, 2, 3)).only(["speed_band", "comfort"]).names == ("comfort",)
    faster = keep.updated(RuleParams(speed_band=SpeedBandParams(1.0, 20.0)))
    assert faster.speed_band == SpeedBandParams(1.0, 20.0) and faster.lane_keeping == keep.lane_keeping
    left = keep.with_rule("lane_change_left", LaneChangeParams(0.3, 0.1))
    assert left.names == ("speed_band", "lane_keeping", "lane_change_left")
    with pytest.raises(UnknownRuleError, match="'flying'"):
        keep.only(["flying"])
    with pytest.raises(RuleParamsError, match="rules.lane_keeping"):
        RuleParams(lane_keeping=LaneChangeParams(0.3, 0.1)).validate()
    with pytest.raises(RuleParamsError, match=r"rules.lane_keeping.h_max' must be a finite number, got nan"):
        RuleParams(lane_keeping=LaneKeepingParams(0.3, float("nan"))).validate()


@pytest.mark.parametrize(("data", "message"), [
    ({"flying": {"z": 1.0}}, "field 'rules.flying': unknown rule 'flying'"),
    ({"speed_band": {"v_min": 0.0}}, "missing field 'rules.speed_band.v_max'"),
    ({"speed_band": {"v_min": 0.0, "v_max": 1.0, "z": 2.0}}, "field 'rules.speed_band.z': unknown parameter 'z'"),
    ({"speed_band": {"v_min": 0.0, "v_max": "fast"}}, "field 'rules.speed_band.v_max' must be a finite number"),
    ({"speed_band": {"v_min": 0.0, "v_max": True}}, "field 'rules.speed_band.v_max' must be a finite number"),
    ({"speed_band": [0.0, 1.0]}, "field 'rules.speed_band' must be an object"),
    ([1.0], "field 'rules' must be an object"),
])
def test_bad_json_names_the_field(data, message):
    with pytest.raises(RuleParamsError, match=message) as error:
        RuleParams.from_json(data)
    assert "\n" not in str(error.value) and "--" not in str(error.value)


def test_a_params_file_written_before_the_typed_records_loads_and_saves_the_same_bytes(tmp_path):
    old = HERE / "params_v1_before_typed_rules.json"
    params = CalibratedParams.load(old)
    assert params.rules.names == ("speed_band", "comfort")
    assert params.rules.speed_band.v_max == json.loads(old.read_text())["rules"]["speed_band"]["v_max"]
    params.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == old.read_bytes()


def test_a_params_file_with_a_bad_rule_names_the_file_and_field(tmp_path):
    data = json.loads((HERE / "params_v1_before_typed_rules.json").read_text())
    data["rules"]["comfort"].pop("j_max")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ParamsError, match=r"bad.json: missing field 'rules.comfort.j_max'"):
        CalibratedParams.load(bad)


def test_formulas_bind_the_typed_parameters():
    rules = rule_set("speed_band,comfort")
    bound = rules.formulas(40, DEFAULT_PARAMS)
    assert not any(isinstance(getattr(node, "bound", None), Param) for f in bound.values() for node in f.nodes())
    with pytest.raises(RuleParamsError, match="missing field 'rules.comfort'"):
        rules.formulas(40, DEFAULT_PARAMS.only(["speed_band"]))
