"""NavWorldInterface on habitat-sim: a scene mesh, its NavMesh (geodesics, clearance) and a depth sensor.

habitat-sim is optional and imported lazily. It has no PyPI wheels: install it from conda
(`conda install -c aihabitat-nightly habitat-sim headless`, the only Python 3.10/3.11 builds) or build it from
source (`pip install . --no-build-isolation` in a habitat-sim checkout).

Frames go through scenes.nav.habitat_frames only. Limitation: one floor per world; positions are lifted to
`floor_height` (default: the NavMesh height nearest the centre of its bounds).
"""

from __future__ import annotations

import math

import numpy as np

from scenes.errors import DiffplanError
from scenes.nav.habitat_frames import points_from_habitat, points_to_habitat, pose_to_habitat
from scenes.nav.types import DEPTH_MAX, DEPTH_MIN, WHEELED, CameraSpec, RobotProfile

INSTALL_HINT = ("habitat-sim is not installed (it has no PyPI wheels): `conda install -c aihabitat-nightly "
                "habitat-sim headless` for Python 3.10/3.11, or build it from source with `pip install . "
                "--no-build-isolation` in a habitat-sim checkout")


class HabitatNotInstalledError(DiffplanError):
    """habitat_sim cannot be imported."""


def import_habitat_sim():
    """The habitat_sim module, or a one-line HabitatNotInstalledError saying how to install it."""
    try:
        import habitat_sim
    except ImportError:
        raise HabitatNotInstalledError(INSTALL_HINT) from None
    return habitat_sim


class HabitatWorld:
    """A habitat-sim scene as a NavWorldInterface (see the module docstring).

    Attributes:
        world_id: the scene path (a PointNav episode's scene_id).
        bounds: (4,) xmin, ymin, xmax, ymax [m] of the NavMesh in our world frame.
        floor_height: Habitat y [m] of the floor positions are placed on.
    """

    def __init__(self, scene: str, camera: CameraSpec | None = None, floor_height: float | None = None,
                 gpu_device_id: int = 0):
        self.hsim = import_habitat_sim()
        self.world_id = str(scene)
        self.gpu_device_id = gpu_device_id
        self._camera = camera = camera or CameraSpec()
        self._robot: RobotProfile | None = None
        self.sim = self.hsim.Simulator(self._configuration(camera))
        self.pathfinder = self.sim.pathfinder
        self._use_robot(WHEELED)
        lower, upper = (np.asarray(v, dtype=np.float64) for v in self.pathfinder.get_bounds())
        self.bounds = np.array([lower[0], -upper[2], upper[0], -lower[2]])
        if floor_height is None:
            centre = np.asarray(self.pathfinder.snap_point(0.5 * (lower + upper)), dtype=np.float64)
            floor_height = float(centre[1]) if np.isfinite(centre).all() else float(lower[1])
        self.floor_height = float(floor_height)

    def _configuration(self, camera: CameraSpec):
        hsim = self.hsim
        sim_cfg = hsim.SimulatorConfiguration()
        sim_cfg.scene_id = self.world_id
        sim_cfg.enable_physics = False
        sim_cfg.gpu_device_id = self.gpu_device_id
        depth = hsim.CameraSensorSpec()
        depth.uuid = "depth"
        depth.sensor_type = hsim.SensorType.DEPTH
        depth.sensor_subtype = hsim.SensorSubType.PINHOLE
        depth.resolution = [camera.height, camera.width]
        depth.position = [0.0, camera.mount_height, 0.0]
        depth.hfov = camera.hfov_deg
        agent_cfg = hsim.agent.AgentConfiguration()
        agent_cfg.sensor_specifications = [depth]
        return hsim.Configuration(sim_cfg, [agent_cfg])

    def _use_robot(self, robot: RobotProfile) -> None:
        """Recompute the NavMesh for the robot's radius and height when it changes."""
        if robot == self._robot:
            return
        settings = self.hsim.NavMeshSettings()
        settings.set_defaults()
        settings.agent_radius = robot.radius
        settings.agent_height = robot.height
        settings.include_static_objects = True
        self.sim.recompute_navmesh(self.pathfinder, settings)
        self._robot = robot

    def _lift(self, xy: np.ndarray) -> np.ndarray:
        return points_to_habitat(np.asarray(xy, dtype=np.float64), self.floor_height)

    def render_depth(self, pose: np.ndarray, camera: CameraSpec) -> np.ndarray:
        """(H, W) float32 z-depth [m] from robot `pose` (3,); outside [0.1, 5] m -> 0 (NavDP's clipping)."""
        if camera != self._camera:
            self.sim.reconfigure(self._configuration(camera))
            self._camera = camera
            self._robot = None
            self._use_robot(WHEELED)
        from habitat_sim.utils.common import quat_from_coeffs

        position, rotation = pose_to_habitat(pose, self.floor_height)
        state = self.hsim.AgentState()
        state.position = position.astype(np.float32)
        state.rotation = quat_from_coeffs(rotation)
        self.sim.get_agent(0).set_state(state)
        depth = np.asarray(self.sim.get_sensor_observations()["depth"], dtype=np.float32)
        depth = np.where((depth >= DEPTH_MIN) & (depth <= DEPTH_MAX), depth, 0.0)
        return depth.astype(np.float32)

    def clearance(self, xy: np.ndarray, robot: RobotProfile) -> np.ndarray:
        """(N,) [m]: NavMesh distance to its edge plus the robot radius it was eroded by; 0 off the NavMesh."""
        self._use_robot(robot)
        out = []
        for point in self._lift(np.atleast_2d(xy)):
            if not self.pathfinder.is_navigable(point):
                out.append(0.0)
            else:
                out.append(float(self.pathfinder.distance_to_closest_obstacle(point, 5.0)) + robot.radius)
        return np.array(out)

    def collides(self, xy: np.ndarray, robot: RobotProfile) -> np.ndarray:
        """(N,) bool: off the NavMesh eroded by the robot's radius."""
        self._use_robot(robot)
        return np.array([not self.pathfinder.is_navigable(p) for p in self._lift(np.atleast_2d(xy))])

    def _find_path(self, start: np.ndarray, goal: np.ndarray, robot: RobotProfile):
        self._use_robot(robot)
        request = self.hsim.ShortestPath()
        request.requested_start = self._lift(start)
        request.requested_end = self._lift(goal)
        found = self.pathfinder.find_path(request)
        return request if found else None

    def shortest_path(self, start: np.ndarray, goal: np.ndarray, robot: RobotProfile) -> np.ndarray | None:
        """(P, 2) obstacle-free path [m] from start (2,) to goal (2,) for `robot` on the navmesh, or None if
        unreachable."""
        request = self._find_path(start, goal, robot)
        if request is None or not len(request.points):
            return None
        return points_from_habitat(np.asarray(request.points, dtype=np.float64))

    def geodesic_distance(self, start: np.ndarray, goal: np.ndarray, robot: RobotProfile) -> float:
        """Length [m] of `shortest_path`, or inf if unreachable."""
        request = self._find_path(start, goal, robot)
        distance = math.inf if request is None else float(request.geodesic_distance)
        return distance if math.isfinite(distance) else math.inf

    def obstacle_footprints(self, robot: RobotProfile, meters_per_pixel: float = 0.1) -> list:
        """Shapely polygons of the non-navigable area inside the bounds (from the top-down NavMesh view)."""
        import shapely

        self._use_robot(robot)
        free = np.asarray(self.pathfinder.get_topdown_view(meters_per_pixel, self.floor_height), dtype=bool)
        lower, _ = self.pathfinder.get_bounds()
        rows, cols = np.nonzero(~free)  # rows run along habitat +Z (world -y), columns along +X (world x)
        x0 = lower[0] + cols * meters_per_pixel
        y_top = -(lower[2] + rows * meters_per_pixel)
        cells = [shapely.box(x, y - meters_per_pixel, x + meters_per_pixel, y) for x, y in zip(x0, y_top,
                                                                                               strict=True)]
        merged = shapely.unary_union(cells)
        return list(getattr(merged, "geoms", [merged])) if not merged.is_empty else []

    def close(self) -> None:
        """Close the simulator."""
        self.sim.close()
