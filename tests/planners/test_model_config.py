"""Model configs (planners.learned.config): typed fields read from KEY=VALUE text and checkpoint JSON,
one-line errors naming the key, and every learned planner's model built from its config."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

import planners
from planners.learned import (
    DiffusionDriveConfig,
    DiffusionPolicyConfig,
    EgoMLPConfig,
    LearnedPlanner,
    ModelConfig,
    ModelConfigError,
    RegressionConfig,
)
from planners.navdp import NavDPConfig
from planners.pstl import PstlConfig, PstlVaeConfig
from planners.registry import planner_class

CONFIGS = {"ego-mlp": EgoMLPConfig, "diffusiondrive": DiffusionDriveConfig,
           "diffusion-policy": DiffusionPolicyConfig, "regression": RegressionConfig, "navdp": NavDPConfig,
           "pstl": PstlConfig, "pstl-ctg": PstlConfig, "pstl-vae": PstlVaeConfig}


@dataclasses.dataclass(frozen=True)
class ExampleConfig(ModelConfig):
    width: int = 8
    rate: float = 0.5
    flag: bool = False
    name: str = "cnn"
    path: str | None = None
    sizes: tuple[int, ...] = (1, 2)


def test_every_learned_planner_names_its_config_class():
    learned = [name for name in planners.available_planners()
               if isinstance(planner_class(name), type) and issubclass(planner_class(name), LearnedPlanner)]
    assert sorted(learned) == sorted(CONFIGS)
    for name, config_class in CONFIGS.items():
        assert planner_class(name).model_class.config_class is config_class
        assert dataclasses.is_dataclass(config_class) and config_class.__dataclass_params__.frozen
        config_class().validate()


def test_text_values_take_their_fields_types():
    config = ExampleConfig.from_text(["width=16", "rate=1e-3", "flag=true", "name=vit", "path=a.npy",
                                      "sizes=3,4,5"])
    assert config == ExampleConfig(16, 1e-3, True, "vit", "a.npy", (3, 4, 5))
    parsed = ExampleConfig.from_text(["rate=2", "flag=No", "path=none", "sizes=(7)", "name=123"])
    assert parsed == ExampleConfig(rate=2.0, flag=False, path=None, sizes=(7,), name="123")
    assert isinstance(ExampleConfig.from_text(["rate=2"]).rate, float)
    assert ExampleConfig.from_text([]) == ExampleConfig()


@pytest.mark.parametrize("items, message", [
    (["width=big"], "model width=big: expected an int"),
    (["width=1.5"], "model width=1.5: expected an int"),
    (["width=true"], "model width=true: expected an int"),
    (["rate=fast"], "model rate=fast: expected a finite float"),
    (["rate=nan"], "model rate=nan: expected a finite float"),
    (["flag=maybe"], "model flag=maybe: expected a bool"),
    (["sizes=1,x"], "model sizes=1,x: expected a tuple of ints"),
    (["height=3"], "model has no key 'height'; ExampleConfig has width, rate, flag, name, path, sizes"),
    (["width"], "model 'width': expected KEY=VALUE"),
    (["width=1", "width=2"], "model width is given twice"),
])
def test_bad_text_fails_in_one_line_naming_the_key(items, message):
    with pytest.raises(ModelConfigError) as error:
        ExampleConfig.from_text(items)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert error.value.field == "model" and error.value.as_option().startswith("--model ")


def test_json_forms_are_read_back_and_types_are_checked():
    config = ExampleConfig(sizes=(4, 5), path="x")
    assert config.to_json()["sizes"] == [4, 5]
    assert ExampleConfig.from_json(config.to_json()) == config
    assert ExampleConfig.from_json({"rate": 1, "sizes": [3]}) == ExampleConfig(rate=1.0, sizes=(3,))
    with pytest.raises(ModelConfigError, match="has no key 'depth'"):
        ExampleConfig.from_json({"depth": 2})
    with pytest.raises(ModelConfigError, match="width='8': expected an int"):
        ExampleConfig.from_json({"width": "8"})
    with pytest.raises(ModelConfigError, match="flag=1: expected a bool"):
        ExampleConfig(flag=1).validate()
    with pytest.raises(ModelConfigError, match="has no key 'height'"):
        ExampleConfig().with_values(height=3)
    assert ExampleConfig().with_values(width=3).width == 3
    error = ModelConfigError("width={1}: odd")
    assert str(pickle.loads(pickle.dumps(error))) == "model width={1}: odd"


def test_real_configs_parse_their_command_line_values():
    parsed = DiffusionDriveConfig.from_text(["d_model=64", "anchors=none", "cls_weight=5"])
    assert parsed == DiffusionDriveConfig(d_model=64, cls_weight=5.0)
    assert NavDPConfig.from_text(["encoder=vit", "vit_patch=8"]).encoder == "vit"
    with pytest.raises(ModelConfigError, match="encoder='transformer': expected one of cnn, vit"):
        NavDPConfig.from_text(["encoder=transformer"])
    with pytest.raises(ModelConfigError, match="d_model=big: expected an int"):
        DiffusionDriveConfig.from_text(["d_model=big"])


def test_planners_build_their_model_from_a_config_or_typed_overrides():
    planner = planner_class("regression")(config=RegressionConfig(d_model=32, heads=2, decoder_layers=1))
    assert planner.model.config == RegressionConfig(d_model=32, heads=2, decoder_layers=1)
    again = planner_class("regression")(d_model=32, heads=2, decoder_layers=1)
    assert again.model.config == planner.model.config
    with pytest.raises(ModelConfigError, match="has no key 'width'"):
        planner_class("ego-mlp")(width=3)
    with pytest.raises(TypeError, match="built from EgoMLPConfig, not RegressionConfig"):
        planner_class("ego-mlp").model_class(RegressionConfig())
