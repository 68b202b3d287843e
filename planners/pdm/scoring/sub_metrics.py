"""NAVSIM's sub-metrics in one type: their values, canonical order, display names and each output's order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

V = TypeVar("V", float, np.ndarray)
_ZERO: Any = 0.0  # every sub-metric's default (a float, whichever V: typed Any so that it fits both)


@dataclass(frozen=True, kw_only=True)
class SubMetrics(Generic[V]):
    """The NAVSIM sub-metrics, each in [0, 1]: a float (one scene, or a mean over scenes) or a (K,) array (K
    proposals). Under PDMS v1 the v2-only ones (V2_ONLY) are all 1; under EPDMS v2 `comfort` is all 1.
    SceneResult and Summary (eval.results) and ProposalScores extend it; a sub-metric left out is 0 (a failed
    scene scores 0 everywhere).

    Class-level metadata (names are the field names):
        NAMES: the canonical order, the fields' (the per-scene CSV's columns).
        LABELS: table column headers; JSON_KEYS: summary.json keys (JSON_KEYS in capitals: BEV status lines).
        SUMMARY_ORDER: summary.json's order (V2_ONLY ones written for EPDMS only).
        V1_TABLE, V2_TABLE: the Markdown table's columns for PDMS (the DiffusionDrive paper's) and EPDMS.
    """

    nc: V = _ZERO  # no at-fault collision (0.5 for an at-fault collision with a static object)
    dac: V = _ZERO  # drivable area compliance
    ddc: V = _ZERO  # driving direction compliance (weight 0 in v1)
    tlc: V = _ZERO  # traffic light compliance (v2)
    ttc: V = _ZERO  # time to collision
    ep: V = _ZERO  # ego progress, relative to the reference's
    comfort: V = _ZERO  # comfort C (v1)
    lk: V = _ZERO  # lane keeping (v2)
    hc: V = _ZERO  # history comfort (v2)
    ec: V = _ZERO  # extended comfort (v2)

    NAMES: ClassVar[tuple[str, ...]] = ("nc", "dac", "ddc", "tlc", "ttc", "ep", "comfort", "lk", "hc", "ec")
    LABELS: ClassVar[Mapping[str, str]] = {"nc": "NC", "dac": "DAC", "ddc": "DDC", "tlc": "TLC", "ttc": "TTC",
                                           "ep": "EP", "comfort": "Comf", "lk": "LK", "hc": "HC", "ec": "EC"}
    JSON_KEYS: ClassVar[Mapping[str, str]] = {**{name: name for name in NAMES}, "comfort": "c"}
    V2_ONLY: ClassVar[frozenset[str]] = frozenset({"tlc", "lk", "hc", "ec"})
    SUMMARY_ORDER: ClassVar[tuple[str, ...]] = ("nc", "dac", "ddc", "ttc", "comfort", "ep", "tlc", "lk", "hc", "ec")
    V1_TABLE: ClassVar[tuple[str, ...]] = ("nc", "dac", "ttc", "comfort", "ep")
    V2_TABLE: ClassVar[tuple[str, ...]] = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec")

    def sub_metrics(self, names: Iterable[str] = NAMES) -> tuple[tuple[str, V], ...]:
        """(name, value) of the sub-metrics `names` (default all, canonical order)."""
        return tuple((name, getattr(self, name)) for name in names)

    @classmethod
    def summary_names(cls, v2: bool) -> tuple[str, ...]:
        """The sub-metrics a summary.json holds, in its order: all for EPDMS v2, all but V2_ONLY for PDMS."""
        return cls.SUMMARY_ORDER if v2 else tuple(n for n in cls.SUMMARY_ORDER if n not in cls.V2_ONLY)

    @classmethod
    def table_names(cls, v2: bool) -> tuple[str, ...]:
        """The Markdown table's sub-metric columns: V2_TABLE for EPDMS v2, V1_TABLE for PDMS."""
        return cls.V2_TABLE if v2 else cls.V1_TABLE
