"""Typed model hyperparameters: one frozen dataclass per learned model, read from JSON or KEY=VALUE text.

A `ModelConfig` subclass lists a model's hyperparameters as typed fields with defaults (int, float, bool, str,
`X | None` and `tuple[X, ...]` of those). The model is built from one, e.g.
`EgoStatusMLP(EgoMLPConfig(hidden_dim=64))`, and a checkpoint keeps `to_json()` under its "model" key.

    from_json  a checkpoint's values: JSON lists become tuples, ints in float fields floats
    from_text  ["d_model=64", "encoder=vit"] (the command line's --model), converted to the field types
    validate   types, then each model's ranges

Errors are `ModelConfigError`: one line naming the key and its value.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Self

from scenes.errors import ConfigError

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
NONE_WORDS = ("none", "null")


class ModelConfigError(ConfigError):
    """A model hyperparameter is unknown or has a bad value: "model d_model='big': expected an int".

    Its field is "model", so the command line writes it as the --model option the value came from.
    """

    def __init__(self, problem: str):
        self.problem = problem
        super().__init__("model", "{field} " + problem.replace("{", "{{").replace("}", "}}"))

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.problem,)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base of the models' hyperparameter dataclasses (see the module docstring); subclasses add fields and
    extend `validate` with their ranges."""

    def __post_init__(self) -> None:
        for name, hint in field_types(type(self)).items():  # JSON's forms: lists for tuples, ints for floats
            value = getattr(self, name)
            converted = from_json_value(value, hint)
            if converted is not value:
                object.__setattr__(self, name, converted)

    def validate(self) -> Self:
        """Self if every field holds a value of its type; ModelConfigError naming the first that does not."""
        for name, hint in field_types(type(self)).items():
            value = getattr(self, name)
            if not conforms(value, hint):
                raise ModelConfigError(f"{name}={value!r}: expected {type_name(hint)}")
        return self

    def to_json(self) -> dict[str, Any]:
        """{field: value} with tuples as lists, as checkpoints store it."""
        return {name: to_json_value(getattr(self, name)) for name in field_types(type(self))}

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The hyperparameters' names, in declaration order."""
        return tuple(field_types(cls))

    @classmethod
    def check_keys(cls, keys: Iterable[str]) -> None:
        """ModelConfigError naming the first key that is not a field, and listing the fields."""
        for key in keys:
            if key not in field_types(cls):
                raise ModelConfigError(f"has no key {key!r}; {cls.__name__} has {', '.join(cls.keys())}")

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> Self:
        """A validated config from a checkpoint's {key: JSON value}; missing keys take their defaults."""
        cls.check_keys(values)
        return cls(**values).validate()

    def with_values(self, **changes: Any) -> Self:
        """A validated copy with `changes` (typed values) applied."""
        type(self).check_keys(changes)
        return dataclasses.replace(self, **changes).validate()

    @classmethod
    def from_text(cls, items: Iterable[str]) -> Self:
        """A validated config from KEY=VALUE strings, each VALUE converted to its field's type (bool:
        true/false, optional: none, tuple: comma-separated); unset keys take their defaults."""
        values: dict[str, Any] = {}
        for item in items:
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep or not key.isidentifier():
                raise ModelConfigError(f"{item!r}: expected KEY=VALUE, e.g. d_model=64")
            cls.check_keys([key])
            if key in values:
                raise ModelConfigError(f"{key} is given twice")
            values[key] = from_text_value(key, text.strip(), field_types(cls)[key])
        return cls(**values).validate()


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def field_types(cls: type[ModelConfig]) -> dict[str, Any]:
    """{field name: resolved type annotation} of a config dataclass (computed once per class)."""
    if cls not in _FIELD_TYPES:
        hints = typing.get_type_hints(cls)
        _FIELD_TYPES[cls] = {field.name: hints[field.name] for field in dataclasses.fields(cls)}
    return _FIELD_TYPES[cls]


def optional_inner(hint: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`, (hint, False) otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(hint) if arm is not type(None)]
        if len(arms) != 1:
            raise TypeError(f"unsupported hyperparameter type {hint}: only X | None unions")
        return arms[0], True
    return hint, False


def tuple_item(hint: Any) -> Any | None:
    """X for `tuple[X, ...]`, None for other types."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported hyperparameter type {hint}: only tuple[X, ...]")
        return args[0]
    return None


def type_name(hint: Any) -> str:
    """'an int', 'a float or none', 'a tuple of ints', ..."""
    inner, optional = optional_inner(hint)
    item = tuple_item(inner)
    names = {bool: "a bool (true or false)", int: "an int", float: "a finite float", str: "a string"}
    name = f"a tuple of {names[item].split(' ')[1]}s" if item is not None else names[inner]
    return f"{name} or none" if optional else name


def conforms(value: Any, hint: Any) -> bool:
    """Whether `value` is of type `hint` (bools are not ints; floats are finite)."""
    inner, optional = optional_inner(hint)
    if value is None:
        return optional
    item = tuple_item(inner)
    if item is not None:
        return isinstance(value, tuple) and all(conforms(v, item) for v in value)
    if inner is bool:
        return isinstance(value, bool)
    if inner is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if inner is float:
        return isinstance(value, float) and math.isfinite(value)
    if inner is str:
        return isinstance(value, str)
    raise TypeError(f"unsupported hyperparameter type {hint}")


def from_json_value(value: Any, hint: Any) -> Any:
    """`value` in the field's form where JSON differs: list -> tuple, int -> float; else unchanged."""
    inner, _ = optional_inner(hint)
    item = tuple_item(inner)
    if item is not None and isinstance(value, (list, tuple)):
        return tuple(from_json_value(v, item) for v in value)
    if inner is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def to_json_value(value: Any) -> Any:
    """`value` with tuples (nested) as lists, as JSON stores them."""
    return [to_json_value(v) for v in value] if isinstance(value, tuple) else value


def from_text_value(key: str, text: str, hint: Any) -> Any:
    """The command line's text for field `key` as a value of type `hint`; ModelConfigError if it is none."""
    inner, optional = optional_inner(hint)
    if optional and text.lower() in NONE_WORDS:
        return None
    item = tuple_item(inner)
    try:
        if item is not None:
            parts = text.strip("()[] ").split(",")
            return tuple(scalar(part.strip(), item) for part in parts if part.strip())
        return scalar(text, inner)
    except ValueError:
        raise ModelConfigError(f"{key}={text}: expected {type_name(hint)}") from None


def scalar(text: str, kind: type) -> Any:
    """`text` as a bool, int, float or str; ValueError when it is not one."""
    if kind is bool:
        if text.lower() not in TRUE_WORDS + FALSE_WORDS:
            raise ValueError(text)
        return text.lower() in TRUE_WORDS
    if kind is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    return kind(text)


def check_positive(config: ModelConfig, *keys: str) -> None:
    """ModelConfigError naming the first of the fields `keys` whose value is not above 0."""
    for key in keys:
        value = getattr(config, key)
        if value <= 0:
            raise ModelConfigError(f"{key}={value}: must be positive")


def check_fraction(config: ModelConfig, key: str) -> None:
    """ModelConfigError unless field `key` lies in [0, 1] (a dropout probability)."""
    value = getattr(config, key)
    if not 0.0 <= value <= 1.0:
        raise ModelConfigError(f"{key}={value}: must be in [0, 1]")
