"""Where a simulated ego path fails NAVSIM-style metrics, for pictures: pure functions on a scene and states.

`states` are the simulated ego rear-axle states after now, map frame, one every SIM_DT from the current
step: (T, 2) x, y [m]; (T, 3) plus heading [rad]; or (T, >=4) plus forward speed [m/s]. Missing headings come
from consecutive positions and missing speeds from finite differences. State i is at scene step
CURRENT_INDEX + i, i.e. i * SIM_DT seconds after now.

The checks mirror `planners.pdm.scoring` with the scene's own geometry (Pacifica footprint from
`box_corners`, shapely polygons) but are simpler: they locate a failure to draw it, they do not score.
  * DAC: a footprint corner is not strictly inside any drivable polygon (polygon by polygon, as the scorer).
  * NC: the ego footprint touches an agent's box at the same step (first contact; NAVSIM's at-fault rules are
    approximated: contacts while the ego is stopped or with an agent behind it are passed over if a later one
    remains).
  * TTC: the footprint moved ahead at constant speed by 0, 0.3, 0.6, 0.9 s touches an agent ahead (within 30
    degrees of the heading) at that later step. The scorer's extra rule for steps in risky areas is left out.
Nothing here imports from planners/ or eval/.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from scenes.agents import AgentCategory
from scenes.drive import CURRENT_INDEX, SIM_DT, DriveScene
from scenes.ego import PACIFICA
from scenes.geometry import box_corners, wrap_angle

TTC_PROJECTION_STEPS = (0, 3, 6, 9)  # x SIM_DT: 0, 0.3, 0.6, 0.9 s (NAVSIM)
TTC_AHEAD_ANGLE = np.deg2rad(30.0)  # [rad] an agent is ahead within this of the ego heading
BEHIND_ANGLE = np.deg2rad(150.0)  # [rad] an agent is behind beyond this
STOPPED_SPEED = 5e-2  # [m/s] NC: the ego counts as stopped at or below this
TTC_STOPPED_SPEED = 5e-3  # [m/s] TTC skips steps slower than this
_STILL = 1e-3  # [m] steps shorter than this keep the previous heading


def ego_states(states: np.ndarray, initial_heading: float | None = None) -> np.ndarray:
    """(T, 4) x [m], y [m], heading [rad], speed [m/s] from states (T, 2), (T, 3) or (T, >=4).

    A missing heading is the direction of travel (central differences; still steps keep the previous one,
    starting from `initial_heading`, default the first segment's); a missing speed is |dxy| / SIM_DT.
    """
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or states.shape[1] < 2:
        raise ValueError(f"states must be (T, 2), (T, 3) or (T, >=4), got shape {states.shape}")
    xy = states[:, :2]
    out = np.zeros((len(states), 4))
    out[:, :2] = xy
    step = np.diff(xy, axis=0)
    if states.shape[1] >= 3:
        out[:, 2] = states[:, 2]
    elif len(states):
        span = np.zeros_like(xy)
        if len(xy) > 1:
            span[1:-1] = xy[2:] - xy[:-2]
            span[0], span[-1] = step[0], step[-1]
        length = np.hypot(span[:, 0], span[:, 1])
        moving = np.flatnonzero(length > _STILL)
        fallback = initial_heading if initial_heading is not None else (
            float(np.arctan2(span[moving[0], 1], span[moving[0], 0])) if moving.size else 0.0)
        heading = np.full(len(xy), fallback)
        last = fallback
        for i in range(len(xy)):
            if length[i] > _STILL:
                last = float(np.arctan2(span[i, 1], span[i, 0]))
            heading[i] = last
        out[:, 2] = heading
    if states.shape[1] >= 4:
        out[:, 3] = states[:, 3]
    elif len(states) > 1:
        speed = np.hypot(step[:, 0], step[:, 1]) / SIM_DT
        out[:-1, 3] = speed
        out[-1, 3] = speed[-1]
    return out


def ego_footprints(states: np.ndarray) -> np.ndarray:
    """(T, 4, 2) [m] Pacifica box corners (FL, RL, RR, FR) of rear-axle states (T, >=3) x, y, heading."""
    states = np.asarray(states, dtype=np.float64)
    heading = states[:, 2]
    center = states[:, :2] + PACIFICA.rear_axle_to_center * np.stack([np.cos(heading), np.sin(heading)], -1)
    count = len(states)
    return box_corners(center, heading, np.full(count, PACIFICA.length), np.full(count, PACIFICA.width))


def _agent_boxes(scene: DriveScene, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Agent corners (S, N, 4, 2) [m] at scene steps `steps` (S,) and their validity (S, N)."""
    agents = scene.agents
    in_range = (steps >= 0) & (steps < agents.num_steps)
    safe = np.where(in_range, steps, 0)
    xy = agents.xy[:, safe].transpose(1, 0, 2)  # (S, N, 2)
    heading = agents.heading[:, safe].T
    size = np.broadcast_to(agents.size[None], (len(steps), agents.num_agents, 2))
    corners = box_corners(xy, heading, size[..., 0], size[..., 1])
    return corners, agents.valid[:, safe].T & in_range[:, None]


def _touching(ego: np.ndarray, boxes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(S, N) bool: ego box (S, 4, 2) touches or overlaps agent box (S, N, 4, 2) where valid (S, N)."""
    reach = 0.5 * np.hypot(PACIFICA.length, PACIFICA.width)
    centre = ego.mean(axis=1)  # (S, 2)
    agent_centre = boxes.mean(axis=2)  # (S, N, 2)
    agent_reach = np.linalg.norm(boxes[:, :, 0] - agent_centre, axis=-1)
    near = valid & (np.linalg.norm(agent_centre - centre[:, None], axis=-1) <= reach + agent_reach + 1e-6)
    out = np.zeros(valid.shape, dtype=bool)
    s, n = np.nonzero(near)
    if s.size:
        out[s, n] = shapely.intersects(shapely.polygons(ego[s]), shapely.polygons(boxes[s, n]))
    return out


def first_offroad_index(scene: DriveScene, states: np.ndarray) -> int | None:
    """First state index whose ego footprint leaves the drivable area (a corner outside every drivable
    polygon, strict containment), or None when the path stays on it."""
    full = ego_states(states, float(scene.current_pose[2]))
    corners = ego_footprints(full).reshape(-1, 2)
    inside = np.zeros(len(corners), dtype=bool)
    for polygon in scene.map.drivable_polygons:
        inside |= shapely.contains_xy(polygon, corners[:, 0], corners[:, 1])
    offroad = ~inside.reshape(-1, 4).all(axis=1)
    hits = np.flatnonzero(offroad)
    return int(hits[0]) if hits.size else None


def collisions(scene: DriveScene, states: np.ndarray) -> list[tuple[int, int]]:
    """Every agent's first contact with the ego footprint as (state index, agent index), by time then
    agent. An agent's box is taken at the same scene step as the ego state."""
    full = ego_states(states, float(scene.current_pose[2]))
    if scene.agents.num_agents == 0 or not len(full):
        return []
    boxes, valid = _agent_boxes(scene, CURRENT_INDEX + np.arange(len(full)))
    touching = _touching(ego_footprints(full), boxes, valid)
    agents = np.flatnonzero(touching.any(axis=0))
    firsts = sorted((int(np.argmax(touching[:, n])), int(n)) for n in agents)
    return firsts


def first_collision(scene: DriveScene, states: np.ndarray) -> tuple[int, int] | None:
    """The first (state index, agent index) where the ego footprint touches an agent's box, or None."""
    found = collisions(scene, states)
    return found[0] if found else None


def _relative_angle(pose: np.ndarray, point: np.ndarray) -> float:
    """[rad] angle between the heading of `pose` (3,) and the direction to `point` (2,); 0 if coincident."""
    d = point - pose[:2]
    if np.hypot(*d) < 1e-9:
        return 0.0
    return abs(float(wrap_angle(np.arctan2(d[1], d[0]) - pose[2])))


def likely_at_fault_collision(scene: DriveScene, states: np.ndarray) -> tuple[int, int] | None:
    """The first contact that NAVSIM would likely blame on the ego (ego moving, agent not behind it);
    the first contact of any kind when none qualifies; None without contact."""
    found = collisions(scene, states)
    full = ego_states(states, float(scene.current_pose[2]))
    for step, agent in found:
        moving = full[step, 3] > STOPPED_SPEED
        behind = _relative_angle(full[step, :3], scene.agents.xy[agent, CURRENT_INDEX + step]) > BEHIND_ANGLE
        if moving and not behind:
            return step, agent
    return found[0] if found else None


@dataclass(frozen=True)
class TTCViolation:
    """A constant-velocity projection of the ego that hits an agent ahead.

    Attributes:
        step: state index the projection starts from (time step * SIM_DT after now).
        agent: agent index.
        horizon: projection time [s] (0, 0.3, 0.6 or 0.9).
        footprint: (4, 2) [m] the projected ego box, map frame.
    """

    step: int
    agent: int
    horizon: float
    footprint: np.ndarray


def first_ttc_violation(scene: DriveScene, states: np.ndarray) -> TTCViolation | None:
    """The first (by step, then horizon) projected ego box that touches an agent ahead at the projected
    time, or None. See the module notes for what is left out of NAVSIM's rule."""
    full = ego_states(states, float(scene.current_pose[2]))
    if scene.agents.num_agents == 0 or not len(full):
        return None
    steps = np.arange(len(full))
    candidates = []
    direction = np.stack([np.cos(full[:, 2]), np.sin(full[:, 2])], -1)
    for j, offset in enumerate(TTC_PROJECTION_STEPS):
        moved = full.copy()
        moved[:, :2] += direction * (full[:, 3:4] * offset * SIM_DT)
        boxes, valid = _agent_boxes(scene, CURRENT_INDEX + steps + offset)
        valid &= (full[:, 3] >= TTC_STOPPED_SPEED)[:, None]
        footprints = ego_footprints(moved)
        for s, n in zip(*np.nonzero(_touching(footprints, boxes, valid))):
            point = scene.agents.xy[n, CURRENT_INDEX + s + offset]
            if _relative_angle(full[s, :3], point) < TTC_AHEAD_ANGLE:
                candidates.append((int(s), j, int(n), footprints[s]))
    if not candidates:
        return None
    s, j, n, footprint = min(candidates, key=lambda c: c[:3])
    return TTCViolation(s, n, TTC_PROJECTION_STEPS[j] * SIM_DT, footprint)


@dataclass(frozen=True)
class FailureMark:
    """One metric failure to draw.

    Attributes:
        metric: "DAC", "NC" or "TTC".
        text: the annotation, e.g. "DAC: leaves drivable area at t=1.3 s".
        step: state index (None when the failure could not be located).
        time: seconds after now (None likewise).
        footprint: (4, 2) [m] ego box to highlight, map frame, or None.
        agent: agent index involved, or None.
        agent_box: (4, 2) [m] that agent's box at the failing time, map frame, or None.
    """

    metric: str
    text: str
    step: int | None = None
    time: float | None = None
    footprint: np.ndarray | None = None
    agent: int | None = None
    agent_box: np.ndarray | None = None

    @property
    def located(self) -> bool:
        """Whether the failure has a step."""
        return self.step is not None


def _category(scene: DriveScene, agent: int) -> str:
    return AgentCategory(int(scene.agents.category[agent])).name.lower().replace("_", " ")


def _agent_box(scene: DriveScene, agent: int, step: int) -> np.ndarray:
    agents = scene.agents
    return box_corners(agents.xy[agent, step], agents.heading[agent, step], *agents.size[agent])


def locate_failures(scene: DriveScene, states: np.ndarray, nc: float = 1.0, dac: float = 1.0,
                    ttc: float = 1.0) -> list[FailureMark]:
    """A FailureMark for each failed sub-metric (value < 1) among NC, DAC and TTC, located on `states`.

    Never raises on bad input: a failure that cannot be located (or states that are not finite) gives a mark
    with `step` None whose text says so.
    """
    wanted = [name for name, value in (("NC", nc), ("DAC", dac), ("TTC", ttc)) if value < 1.0]
    if not wanted:
        return []
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or states.shape[1] < 2 or not len(states) or not np.isfinite(states).all():
        return [FailureMark(name, f"{name}: failed; no simulated path to locate it on") for name in wanted]
    full = ego_states(states, float(scene.current_pose[2]))
    footprints = ego_footprints(full)
    marks = []
    for name in wanted:
        try:
            marks.append(_locate(name, scene, states, full, footprints))
        except Exception as error:  # noqa: BLE001 - a picture must not fail on an odd scene
            marks.append(FailureMark(name, f"{name}: failed; could not locate it ({type(error).__name__})"))
    return marks


def _locate(name: str, scene: DriveScene, states: np.ndarray, full: np.ndarray, footprints: np.ndarray
            ) -> FailureMark:
    if name == "DAC":
        step = first_offroad_index(scene, states)
        if step is None:
            return FailureMark(name, "DAC: failed, but no simulated footprint leaves the drivable area here")
        return FailureMark(name, f"DAC: leaves drivable area at t={step * SIM_DT:.1f} s", step, step * SIM_DT,
                           footprints[step])
    if name == "NC":
        hit = likely_at_fault_collision(scene, states)
        if hit is None:
            return FailureMark(name, "NC: failed, but no simulated footprint touches an agent's box here")
        step, agent = hit
        box = _agent_box(scene, agent, CURRENT_INDEX + step)
        return FailureMark(name, f"NC: collision with {_category(scene, agent)} at t={step * SIM_DT:.1f} s",
                           step, step * SIM_DT, footprints[step], agent, box)
    violation = first_ttc_violation(scene, states)
    if violation is None:
        return FailureMark(name, "TTC: failed (likely in a multi-lane / off-road / intersection step); "
                                 "no projected contact ahead found")
    step, agent = violation.step, violation.agent
    when = CURRENT_INDEX + step + round(violation.horizon / SIM_DT)
    return FailureMark(name, f"TTC: {_category(scene, agent)} within {violation.horizon:.1f} s ahead at "
                             f"t={step * SIM_DT:.1f} s", step, step * SIM_DT, violation.footprint, agent,
                       _agent_box(scene, agent, when))
