"""Our traffic simulator's own agents, stepped beside an ego that something else drives (closed loop).

The synthetic generator simulates the whole fleet with the ego as vehicle 0. Here the same simulation is run
up to a log's start, and from then on vehicle 0 is put, every step, where the closed-loop ego is: its rear
axle projected onto its route path (station and speed). The other vehicles keep their IDM, leaders through the
lane graph, lights, merge yielding and pedestrians, and react to that ego. The ego's lateral position is not
seen: an ego that leaves its route lane is still where its projection is for the others.
"""

from __future__ import annotations

import numpy as np

from scenes import portable
from scenes.agents import AgentTracks
from scenes.digest import content_digest
from scenes.drive import CURRENT_INDEX, DriveLog, ScenarioType
from scenes.ego import PACIFICA
from scenes.errors import DiffplanError
from scenes.geometry import wrap_angle
from scenes.synthetic.generator import AGENT_RANGE, agent_states, log_and_agent_rows, traffic_simulation
from scenes.synthetic.traffic import WARMUP

SEARCH_WINDOW = 30.0  # [m] of route path searched around the ego's last station


class NotASyntheticLog(DiffplanError, ValueError):
    """Simulated traffic was asked for a log this checkout's synthetic generator did not make."""


class SimulatedTraffic:
    """The generator's traffic for a long synthetic log (`scenes.synthetic.generate_log`), reacting to an
    externally driven ego from CURRENT_INDEX on; agents are the log's rows, map frame."""

    def __init__(self, log: DriveLog):
        from scenes.synthetic import GENERATOR_VERSION, LONG_ROAD_EXTENSION

        meta = log.metadata
        if meta.scenario_type is ScenarioType.LOG or meta.generator_version != GENERATOR_VERSION:
            raise NotASyntheticLog(f"{meta.scene_id}: simulated agents need a synthetic log of "
                                   f"{GENERATOR_VERSION}, not {meta.generator_version}")
        made, rows = log_and_agent_rows(meta.seed, meta.split, meta.scenario_type, GENERATOR_VERSION,
                                        log.num_steps, LONG_ROAD_EXTENSION, rear_on_path=True)
        if content_digest(made) != content_digest(log):
            raise NotASyntheticLog(f"{meta.scene_id}: not the log `scenes.synthetic.generate_log` makes "
                                   "for its seed (simulated agents need one)")
        rng, lay, self._table, _, _, self._sim = traffic_simulation(meta.seed, meta.scenario_type,
                                                                    log.num_steps, LONG_ROAD_EXTENSION)
        # generate_log's frame
        theta, shift = rng.uniform(-np.pi, np.pi), rng.uniform(-3000.0, 3000.0, size=2)
        self._theta, self._shift = theta, shift
        self._rotation = portable.sincos(theta)[::-1]  # (cos, sin)
        self._rows = rows
        self._path = lay.ego_path
        self._log = log
        agents = log.agents
        self.xy, self.heading, self.velocity, self.valid = (
            a.copy() for a in (agents.xy, agents.heading, agents.velocity, agents.valid))
        sim = self._sim
        sim.f.active[:] = sim.f.spawn == 0
        for k in range(WARMUP + CURRENT_INDEX):
            sim._record(k)
            sim._step(k)
        sim._record(WARMUP + CURRENT_INDEX)
        sim.lc = None  # the expert's lane change is not the closed-loop ego's
        self._station = float(sim.f.s[0])

    def _to_build_frame(self, xy: np.ndarray) -> np.ndarray:
        cos, sin = self._rotation
        return portable.rotate(np.asarray(xy, np.float64) - self._shift, (cos, -sin))

    def _ego_station(self, rear_xy: np.ndarray) -> float:
        """Station [m] on the ego's route path of the point nearest to the rear axle (map frame)."""
        table, path = self._table, self._path
        length = int(table.length[path])
        lo = max(0, int(self._station - SEARCH_WINDOW))
        hi = min(length, int(self._station + SEARCH_WINDOW) + 1)
        samples = table.xy[path, lo:hi + 1]
        point = self._to_build_frame(rear_xy[None])[0]
        offset = samples - point
        i = int(np.argmin((offset * offset).sum(-1)))
        i = min(i, len(samples) - 2)
        tangent = samples[i + 1] - samples[i]
        along = float(((point - samples[i]) * tangent).sum() / max(float((tangent * tangent).sum()), 1e-12))
        return lo + i + min(max(along, -0.5), 1.5)

    def advance(self, t: int, ego_pose: np.ndarray, ego_speed: float) -> None:
        """Step from log step t to t + 1 with the ego's rear axle at `ego_pose` (3,) map frame, at `ego_speed`
        [m/s]: the other agents react to it."""
        sim, k = self._sim, WARMUP + t
        self._station = self._ego_station(np.asarray(ego_pose[:2]))
        sim.f.s[0], sim.f.v[0] = self._station, max(float(ego_speed), 0.0)
        sim.lc = None
        sim._step(k)
        sim._record(k + 1)
        xy, heading, velocity, active = agent_states(sim, self._table, slice(k + 1, k + 2))
        rows = self._rows
        cos, sin = self._rotation
        xy_map = portable.rotate(xy[rows, 0], (cos, sin)) + self._shift
        ego_sin, ego_cos = portable.sincos(float(ego_pose[2]))
        direction = np.array([ego_cos, ego_sin])
        centre = np.asarray(ego_pose[:2]) + PACIFICA.rear_axle_to_center * direction
        valid = active[rows, 0] & (portable.norm(xy_map - centre) <= AGENT_RANGE)
        self.valid[:, t + 1] = valid
        self.xy[:, t + 1] = np.where(valid[:, None], xy_map, 0.0)
        self.heading[:, t + 1] = np.where(valid, wrap_angle(heading[rows, 0] + self._theta), 0.0)
        self.velocity[:, t + 1] = np.where(valid[:, None], portable.rotate(velocity[rows, 0], (cos, sin)),
                                           0.0)

    def tracks(self, steps: slice = slice(None)) -> AgentTracks:
        """The log's agents (N, steps) as simulated so far (later steps hold the log)."""
        agents = self._log.agents
        return AgentTracks(agents.track_ids.copy(), agents.category.copy(), agents.size.copy(),
                           self.xy[:, steps], self.heading[:, steps], self.velocity[:, steps],
                           self.valid[:, steps])


__all__ = ["NotASyntheticLog", "SimulatedTraffic"]
