"""The transport-free core of `diffplan node`: `NavNodeCore` (wheeled robots, quadrupeds) and `VehicleNodeCore`
(driving planners), both `interface.NodeCore`, with their `NodeParams`."""

from __future__ import annotations

from diffplan.node.nav_core import NavNodeCore
from diffplan.node.params import NodeParams, NodeParamsError
from diffplan.node.vehicle_core import VehicleNodeCore

__all__ = ["NavNodeCore", "NodeParams", "NodeParamsError", "VehicleNodeCore"]
