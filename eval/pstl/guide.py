"""The STL objective of pSTL's test-time guidance (pSTL §1.5 "Guidance"), from the observation only.

`stl_objective(observation, condition)` returns the `Objective` that `planners.pstl.guidance` follows: plans
xy (N, 8, 2) [m] -> ρ̃ (N,), the smooth robustness (stl SMOOTH mode, Boltzmann max, temperature τ = 100 as
pSTL's) of the mode's spec: the conjunction of `mode_rules(mode)` with the same parameters and horizon as the
evaluator (`eval.pstl.scoring.mode_formula`). The model takes the Adam steps, in its own sample space.

It sees no privileged data (`SurrogateSignals` is built from a DriveObservation), so it also works in closed
loop. Its signals (9 states: the ego now at the origin, then the 8 plan poses, 0.5 s apart) follow
`stl.signals` as far as the observation allows; the differences:

- heading ψ: of the step from the previous state (the first from the origin; a step shorter than MIN_STEP
  keeps the previous heading, 0 at the origin), as `headings_from_xy` gives the model's plans; stl.signals
  reads the pose's heading (the same for model plans).
- v [m/s]: the same second-order finite differences on the 9 states; its sign (reversing) uses ψ above.
  Below SLOW (0.1 m/s) it is the velocity's component along ψ instead (at most SLOW below |v|), so a plan at
  rest still has a gradient (|v| has none at 0).
- d_c [m], h_c [rad]: to the route centreline (the route lanes' centrelines joined, cropped to the
  observation), where stl.signals takes the route lane nearest each state; the tangent is the first nearest
  segment's direction, where stl.signals uses the chord over ±0.5 m of arc (they differ within 0.5 m of a
  vertex). Beyond the line's ends both extrapolate the end segment.
- d_l, h_l / d_r, h_r: the neighbours are picked once, for the route lane nearest the ego now, by
  stl.signals' rule (a non-connector lane of the same roadblock, the nearest one more than 0.5 m to that
  side, measured at the ego); stl.signals picks them per group of states sharing a nearest route lane (median
  over those states). Past the lane's roadblock the surrogate keeps that neighbour, extrapolated, where
  stl.signals would switch lanes (ABSENT on a connector). No neighbour (or the ego on a connector): ABSENT and
  0 rad, as in stl.signals.
- s [m]: stl.signals' box distance (the ego's PACIFICA box to each agent's; minus the penetration depth on
  overlap), but only to the MAX_AGENTS agents present now, moved at their current velocity with their heading
  held (stl.signals: the logged futures, agents appearing later included). FAR with no agent, as in
  stl.signals; not clipped. (pSTL covers each car by 4 discs of radius W/2, which under-covers the corners;
  covering discs over-cover them and, against a gap calibrated on boxes, fail samples the evaluator passes.)
- a, j, w, stop_dist, red and goal_dist are not computed: no mode's rules read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
import torch

from eval.pstl.scoring import HORIZON, PLAN_DT, PLAN_POSES, mode_formula
from planners.pstl.condition import STLCondition
from planners.pstl.guidance import Objective
from planners.pstl.model import MIN_STEP
from scenes.drive import DriveObservation
from scenes.ego import PACIFICA
from scenes.errors import DiffplanError
from stl.formula import Formula
from stl.robustness import Mode, Signals, robustness
from stl.signals import ABSENT, FAR

SURROGATE_NAMES = ("v", "d_c", "h_c", "d_l", "h_l", "d_r", "h_r", "s")
NUM_STATES = PLAN_POSES + 1  # the ego now, then the plan
NEIGHBOUR_GAP = 0.5  # [m] a neighbour lane lies more than this to its side (stl.signals' rule)
MAX_AGENTS = 8  # agents the surrogate gap sees: the nearest now (pSTL: its 8 nearest vehicles)
SLOW = 0.1  # [m/s] below this speed v is the velocity along ψ, whose gradient does not vanish at rest


TEMPERATURE = 100.0  # [1 / robustness units] τ of the smooth semantics (pSTL's)


class GuideConfigError(DiffplanError, ValueError):
    """An objective setting that cannot be used; the message names the field."""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _vertices(line: shapely.Geometry) -> np.ndarray:
    """(K, 2) [m] vertices of a line without repeated consecutive points."""
    xy = shapely.get_coordinates(line).astype(np.float64)
    keep = np.r_[True, (np.diff(xy, axis=0) != 0.0).any(axis=1)]
    return xy[keep]


def _project(vertices: torch.Tensor, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed lateral offset [m] (left +) of points xy (..., 2) from the polyline `vertices` (K >= 2, 2) and
    the direction [rad] of its first nearest segment, each (...); differentiable in xy (the segment choice is
    not)."""
    start, step = vertices[:-1], vertices[1:] - vertices[:-1]
    length = step.norm(dim=-1)
    unit = step / length[:, None]
    rel = xy[..., None, :] - start  # (..., K - 1, 2)
    along = torch.minimum((rel * unit).sum(-1).clamp(min=0.0), length)
    gap = rel - along[..., None] * unit
    nearest = (gap * gap).sum(-1).detach().argmin(dim=-1, keepdim=True)
    cross = unit[:, 0] * rel[..., 1] - unit[:, 1] * rel[..., 0]
    direction = torch.atan2(unit[:, 1], unit[:, 0])
    return cross.gather(-1, nearest)[..., 0], direction[nearest[..., 0]]


def _safe_norm(v: torch.Tensor) -> torch.Tensor:
    """|v| over the last axis with a zero (not NaN) gradient at v = 0."""
    n2 = (v * v).sum(-1)
    positive = n2 > 0.0
    root = torch.sqrt(torch.where(positive, n2, torch.ones_like(n2)))
    return torch.where(positive, root, torch.zeros_like(n2))


def _rate(f: torch.Tensor, dt: float) -> torch.Tensor:
    """d/dt of (N, T >= 3) samples spaced dt [s]: stl.signals' second-order differences (np.gradient)."""
    first = -1.5 / dt * f[:, :1] + 2.0 / dt * f[:, 1:2] - 0.5 / dt * f[:, 2:3]
    last = 0.5 / dt * f[:, -3:-2] - 2.0 / dt * f[:, -2:-1] + 1.5 / dt * f[:, -1:]
    return torch.cat([first, (f[:, 2:] - f[:, :-2]) / (2.0 * dt), last], dim=1)


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    """Angles [rad] wrapped to (-pi, pi], differentiably."""
    return torch.atan2(torch.sin(angle), torch.cos(angle))


def step_headings(states: torch.Tensor) -> torch.Tensor:
    """(N, T) headings [rad] of states (N, T, 2) [m] whose first is the ego at the origin (heading 0): each
    later one the direction of the step from the previous state, kept when that step is below MIN_STEP."""
    step = states[:, 1:] - states[:, :-1]
    moving = (step * step).sum(-1) >= MIN_STEP * MIN_STEP
    safe = torch.where(moving[..., None], step, torch.ones_like(step))  # no atan2(0, 0) gradient
    raw = torch.atan2(safe[..., 1], safe[..., 0])
    last = torch.zeros_like(states[:, 0, 0])
    out = [last]
    for k in range(step.shape[1]):
        last = torch.where(moving[:, k], raw[:, k], last)
        out.append(last)
    return torch.stack(out, dim=1)


CORNER_SIGNS = ((1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0))  # scenes.geometry.box_corners' order
NEXT_CORNER = (1, 2, 3, 0)


def _corners(centre: torch.Tensor, heading: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """(..., 4, 2) [m] corners of boxes: centre (..., 2) [m], heading (...) [rad], size (..., 2) length, width
    [m], in `scenes.geometry.box_corners`' order."""
    local = centre.new_tensor(CORNER_SIGNS) * (0.5 * size)[..., None, :]  # (..., 4, 2)
    c, s = torch.cos(heading)[..., None], torch.sin(heading)[..., None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return torch.stack([x, y], -1) + centre[..., None, :]


def _corner_edge_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(...) [m] least distance from the corners of boxes p (..., 4, 2) to the edges of boxes q (..., 4,
    2)."""
    start = q[..., None, :, :]  # (..., 1, 4 edges, 2)
    edge = q[..., NEXT_CORNER, :][..., None, :, :] - start
    rel = p[..., :, None, :] - start  # (..., 4 corners, 4 edges, 2)
    ex, ey, rx, ry = edge[..., 0], edge[..., 1], rel[..., 0], rel[..., 1]
    along = ((rx * ex + ry * ey) / (ex * ex + ey * ey).clamp(min=1e-12)).clamp(0.0, 1.0)
    dx, dy = rx - along * ex, ry - along * ey
    squared = (dx * dx + dy * dy).flatten(-2).amin(-1)
    return torch.sqrt(squared.clamp(min=1e-24))


def box_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(...) [m] distance between boxes a, b (..., 4, 2) (broadcast), minus the penetration depth where they
    overlap: stl.signals' box distance (corner-to-edge either way; separating axes on the boxes' first two
    edge normals), differentiable almost everywhere."""
    a, b = torch.broadcast_tensors(a, b)
    apart = torch.minimum(_corner_edge_distance(a, b), _corner_edge_distance(b, a))
    edges = torch.cat([a[..., 1:3, :] - a[..., 0:2, :], b[..., 1:3, :] - b[..., 0:2, :]], dim=-2)  # 4 axes
    normals = torch.stack([-edges[..., 1], edges[..., 0]], -1)
    normals = normals / _safe_norm(normals).clamp(min=1e-12)[..., None]
    pa, pb = a @ normals.transpose(-1, -2), b @ normals.transpose(-1, -2)  # (..., 4 corners, 4 axes)
    overlap = torch.minimum(pa.amax(-2), pb.amax(-2)) - torch.maximum(pa.amin(-2), pb.amin(-2))
    depth = overlap.amin(-1)
    return torch.where(depth > 0.0, -depth, apart)


@dataclass(frozen=True, eq=False)
class SurrogateSignals:
    """Observation-only STL signals of plans, built once per observation (module docstring). Ego frame.

    Attributes:
        centre: (K, 2) [m] route centreline vertices.
        left, right: (K', 2) [m] centreline vertices of the ego lane's left / right neighbour; None: none.
        agent_xy: (A, 9, 2) [m] agents' box centres at the 9 states (constant velocity from now).
        agent_heading: (A,) [rad] agents' headings now (held).
        agent_size: (A, 2) [m] box length, width.
        dt: [s] between states.
    """

    centre: np.ndarray
    left: np.ndarray | None
    right: np.ndarray | None
    agent_xy: np.ndarray
    agent_heading: np.ndarray
    agent_size: np.ndarray
    dt: float = PLAN_DT

    @classmethod
    def from_observation(cls, observation: DriveObservation, dt: float = PLAN_DT) -> SurrogateSignals:
        """The surrogate of `observation`: its route, the ego lane's neighbours and the MAX_AGENTS agents
        nearest now."""
        centre = _vertices(observation.route.centerline)
        if len(centre) < 2:
            raise ValueError(f"the route centreline has {len(centre)} distinct points; it needs at least 2")
        left, right = _neighbours(observation)
        agents = observation.agents
        now = agents.valid[:, -1]
        if now.sum() > MAX_AGENTS:  # pSTL's 8 nearest neighbours (by centre distance now)
            distance = np.where(now, np.hypot(agents.xy[:, -1, 0], agents.xy[:, -1, 1]), np.inf)
            now = np.zeros_like(now)
            now[np.argsort(distance, kind="stable")[:MAX_AGENTS]] = True
        times = dt * np.arange(NUM_STATES)
        xy = agents.xy[now, -1][:, None] + agents.velocity[now, -1][:, None] * times[:, None]
        return cls(centre, left, right, xy, agents.heading[now, -1].astype(np.float64),
                   agents.size[now].astype(np.float64), float(dt))

    def signals(self, xy: torch.Tensor) -> Signals:
        """Signals (N, 9, SURROGATE_NAMES) float64 of plans xy (N, 8, 2) [m] (ego frame), state 0 = the ego
        now at the origin; differentiable in xy."""
        if xy.ndim != 3 or tuple(xy.shape[1:]) != (PLAN_POSES, 2):
            raise ValueError(f"xy must have shape (N, {PLAN_POSES}, 2) [m], got {tuple(xy.shape)}")
        xy = xy.to(torch.float64)
        states = torch.cat([torch.zeros_like(xy[:, :1]), xy], dim=1)  # (N, 9, 2)
        psi = step_headings(states)
        vx, vy = _rate(states[..., 0], self.dt), _rate(states[..., 1], self.dt)
        speed = _safe_norm(torch.stack([vx, vy], -1))
        along = vx * torch.cos(psi) + vy * torch.sin(psi)
        v = torch.where(speed < SLOW, along, torch.where(along < 0.0, -speed, speed))
        columns = [v]
        for line in (self.centre, self.left, self.right):
            if line is None:
                columns += [torch.full_like(v, ABSENT), torch.zeros_like(v)]
                continue
            offset, direction = _project(xy.new_tensor(line), states)
            columns += [offset, _wrap(psi - direction)]
        columns.append(self._agent_distance(states, psi))
        return Signals(SURROGATE_NAMES, torch.stack(columns, dim=-1))

    def _agent_distance(self, states: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        """(N, 9) s [m]: least box distance between the ego and any agent (negative on overlap), FAR with
        none."""
        if len(self.agent_xy) == 0:
            return torch.full(states.shape[:2], FAR, dtype=states.dtype, device=states.device)
        axis = torch.stack([torch.cos(psi), torch.sin(psi)], -1)
        centre = states + PACIFICA.rear_axle_to_center * axis
        ego_size = states.new_tensor([PACIFICA.length, PACIFICA.width])
        ego = _corners(centre, psi, ego_size.expand(*psi.shape, 2))  # (N, 9, 4, 2)
        size = states.new_tensor(self.agent_size)[:, None].expand(-1, NUM_STATES, 2)
        heading = states.new_tensor(self.agent_heading)[:, None].expand(-1, NUM_STATES)
        agent_xy = states.new_tensor(self.agent_xy)  # (A, 9, 2)
        agents = _corners(agent_xy, heading, size).permute(1, 0, 2, 3)  # (9, A, 4, 2)
        steps = torch.arange(NUM_STATES, device=states.device)
        with torch.no_grad():  # the nearest agent per (plan, state); only its gap needs a gradient
            nearest = self._nearest_agents(ego.detach(), centre.detach(), agents, agent_xy.transpose(0, 1))
        return box_gap(ego, agents[steps.expand_as(nearest), nearest]).clamp(max=FAR)  # (N, 9)

    def _nearest_agents(self, ego: torch.Tensor, ego_centre: torch.Tensor, agents: torch.Tensor,
                        centres: torch.Tensor) -> torch.Tensor:
        """(N, 9) index of the agent nearest (box distance) each ego box (N, 9, 4, 2) centred at (N, 9, 2),
        of agents (9, A, 4, 2) centred at (9, A, 2). The box distance lies between the centre distance minus
        the boxes' outer radii and minus their inner radii (as in stl.signals), so only agents whose lower
        bound is below the least upper bound need the exact distance."""
        between = _safe_norm(ego_centre[:, :, None] - centres[None])  # (N, 9, A)
        half_sizes = ego.new_tensor(self.agent_size) / 2.0  # (A, 2)
        lower = between - PACIFICA.half_diagonal - half_sizes.norm(dim=-1)
        upper = between - 0.5 * min(PACIFICA.length, PACIFICA.width) - half_sizes.amin(dim=-1)
        candidate = lower <= upper.amin(dim=2, keepdim=True) + 1e-6
        n, t, a = torch.nonzero(candidate, as_tuple=True)
        exact = torch.full(candidate.shape, math.inf, dtype=ego.dtype, device=ego.device)
        exact[n, t, a] = box_gap(ego[n, t], agents[t, a])
        return exact.argmin(dim=2)


def _neighbours(observation: DriveObservation) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Centreline vertices of the left and right neighbours of the route lane nearest the ego (None: none)."""
    m = observation.map
    rows = [m.lane_index(lane) for lane in observation.route.lane_ids if lane in set(m.lane_ids.tolist())]
    if not rows:
        return None, None
    origin = shapely.Point(0.0, 0.0)
    row = rows[int(np.argmin([m.lane_centerlines[r].distance(origin) for r in rows]))]
    if m.lane_is_connector[row]:
        return None, None
    peers = np.flatnonzero((m.lane_roadblock_ids == m.lane_roadblock_ids[row]) & ~m.lane_is_connector)
    here = torch.zeros(2, dtype=torch.float64)

    def offset(r: int) -> float:
        vertices = _vertices(m.lane_centerlines[r])
        return float(_project(torch.from_numpy(vertices), here)[0]) if len(vertices) >= 2 else math.nan

    own = offset(row)
    out: list[np.ndarray | None] = []
    for sign in (1.0, -1.0):
        best, gap = None, math.inf
        for peer in peers[peers != row]:
            rel = sign * (own - offset(int(peer)))  # the peer's offset from this lane, towards `sign`
            if NEIGHBOUR_GAP < rel < gap:
                best, gap = int(peer), rel
        out.append(None if best is None else _vertices(m.lane_centerlines[best]))
    return out[0], out[1]


def _smooth(formula: Formula, surrogate: SurrogateSignals, xy: torch.Tensor, temperature: float
            ) -> torch.Tensor:
    return robustness(formula, surrogate.signals(xy), t=0, mode=Mode.SMOOTH, temperature=temperature)


def smooth_mode_robustness(surrogate: SurrogateSignals, condition: STLCondition, xy: torch.Tensor,
                           temperature: float = TEMPERATURE) -> torch.Tensor:
    """(N,) float64 smooth robustness ρ̃ (Boltzmann max, soft-min at `temperature`; <= the exact one on the
    same signals) of plans xy (N, 8, 2) [m] under the mode's spec (`mode_formula`), on surrogate signals."""
    return _smooth(mode_formula(condition, HORIZON), surrogate, xy, temperature)


def stl_objective(observation: DriveObservation, condition: STLCondition, temperature: float = TEMPERATURE
                  ) -> Objective:
    """The guidance objective (module docstring): xy (N, 8, 2) [m] ego frame -> ρ̃ (N,) float64,
    differentiable in xy; a pure function of (observation, condition, temperature, xy). GuideConfigError for a
    temperature that is not a positive finite number."""
    if not (_is_number(temperature) and math.isfinite(temperature) and temperature > 0):
        raise GuideConfigError(f"temperature = {temperature!r} must be a positive finite number")
    formula = mode_formula(condition, HORIZON)
    surrogate = SurrogateSignals.from_observation(observation)

    def objective(xy: torch.Tensor) -> torch.Tensor:
        if xy.ndim != 3 or tuple(xy.shape[1:]) != (PLAN_POSES, 2):
            raise ValueError(f"xy must have shape (N, {PLAN_POSES}, 2) [m], got {tuple(xy.shape)}")
        return _smooth(formula, surrogate, xy, temperature)

    return objective
