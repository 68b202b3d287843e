"""`MujocoNavWorld`: a `NavWorld` as a MuJoCo model, with offscreen depth, clearance, collisions and paths.

Implements `scenes.nav.types.NavWorldInterface`. Depth comes from MuJoCo's OpenGL depth buffer (MUJOCO_GL
defaults to egl, headless), which MuJoCo linearises to the distance along the optical axis, i.e. pinhole
z-depth. Clearance and collisions are exact (footprints of the primitives in the robot's height slice,
vectorised over points); paths search an occupancy grid + ESDF per robot (cached, see `RobotMap`).
The MuJoCo model and renderers are built on first use and dropped when pickled.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import Any, Self

import numpy as np

from scenes import portable
from scenes.nav.grid import GridMap, grid_graph, path_length, pull_string, rasterize, shortest_field, trace
from scenes.nav.types import DEPTH_MAX, DEPTH_MIN, CameraSpec, RobotProfile
from scenes.nav.world import NavWorld, PrimitiveKind, Primitives

GRID_RESOLUTION = 0.1  # [m] planning grid
PLAN_MARGIN = 0.1  # [m] a cell is traversable when its ESDF >= robot radius + this
PENALTY_WEIGHT = 4.0  # clearance penalty: cost factor 1 + w * (1 - (esdf - need) / D)^2 within D of need
PENALTY_DISTANCE = 0.6  # [m] D
SNAP_DISTANCE = 0.5  # [m] start/goal off the traversable cells snap to the nearest within this
_FIELD_CACHE = 16  # Dijkstra fields kept per robot (evaluation asks for the same goal every step)
_ZNEAR, _ZFAR = 0.02, 30.0  # [m] clip planes; anything beyond DEPTH_MAX reads 0 anyway
_MAX_IMAGE = 640  # [px] offscreen buffer side (CameraSpec allows up to 640 x 640)


def world_mesh(prims: Primitives, slices: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3), faces (F, 3)) of every primitive as one triangle mesh, faces wound outwards."""
    verts, faces, count = [np.zeros((0, 3))], [np.zeros((0, 3), np.int64)], 0
    a = np.arange(slices) * (2 * math.pi / slices)
    i = np.arange(slices)
    j = (i + 1) % slices
    fan = np.arange(1, slices - 1)
    cyl_faces = np.vstack([np.column_stack([i, j, slices + j]), np.column_stack([i, slices + j, slices + i]),
                           np.column_stack([np.zeros_like(fan), fan + 1, fan]),
                           np.column_stack([np.full_like(fan, slices), slices + fan, slices + fan + 1])])
    k4 = np.arange(4)
    box_faces = np.vstack([[[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7]],
                           np.column_stack([k4, (k4 + 1) % 4, 4 + (k4 + 1) % 4]),
                           np.column_stack([k4, 4 + (k4 + 1) % 4, 4 + k4])])
    for k in range(len(prims)):
        (x, y), (hx, hy), (z0, z1) = prims.center[k], prims.half[k], prims.z[k]
        if prims.kind[k] == PrimitiveKind.CYLINDER:
            sin, cos = portable.sincos(a)
            ring = np.column_stack([x + hx * cos, y + hx * sin])
            tri = cyl_faces
        else:
            s, c = portable.sincos(prims.yaw[k])
            ring = portable.rotate(np.array([[hx, hy], [-hx, hy], [-hx, -hy], [hx, -hy]]), (c, s)) + [x, y]
            tri = box_faces
        n = len(ring)
        verts.append(np.vstack([np.column_stack([ring, np.full(n, z0)]), np.column_stack([ring, np.full(n, z1)])]))
        faces.append(tri + count)
        count += 2 * n
    return np.vstack(verts), np.vstack(faces)


def world_mjcf(world: NavWorld, max_image: int = _MAX_IMAGE) -> str:
    """MJCF text of `world`: a floor slab, every primitive as one static mesh (drawn in one call, which is
    what makes software-GL rendering fast), the primitives again as geoms of group 3 (hidden; for ray
    casting), and one camera."""
    prims = world.primitives()
    xmin, ymin, xmax, ymax = world.bounds
    geoms = [(f'<geom name="floor" type="box" pos="{(xmin + xmax) / 2:.6f} {(ymin + ymax) / 2:.6f} -0.05" '
             f'size="{(xmax - xmin) / 2 + 5:.6f} {(ymax - ymin) / 2 + 5:.6f} 0.05"/>')]
    for k in range(len(prims)):
        (x, y), (hx, hy), (z0, z1) = prims.center[k], prims.half[k], prims.z[k]
        pos = f'group="3" contype="0" conaffinity="0" pos="{x:.6f} {y:.6f} {(z0 + z1) / 2:.6f}"'
        if prims.kind[k] == PrimitiveKind.CYLINDER:
            geoms.append(f'<geom type="cylinder" {pos} size="{hx:.6f} {(z1 - z0) / 2:.6f}"/>')
        else:
            geoms.append(f'<geom type="box" {pos} size="{hx:.6f} {hy:.6f} {(z1 - z0) / 2:.6f}" '
                         f'euler="0 0 {prims.yaw[k]:.9f}"/>')
    asset = ""
    if len(prims):
        verts, faces = world_mesh(prims)
        asset = (f'<asset><mesh name="obstacles" inertia="shell" vertex="{" ".join(f"{v:.6f}" for v in verts.ravel())}" '
                 f'face="{" ".join(map(str, faces.ravel()))}"/></asset>')
        geoms.append('<geom name="obstacles" type="mesh" mesh="obstacles" group="1" contype="0" conaffinity="0"/>')
    return (f'<mujoco model="{world.world_id}"><compiler angle="radian"/>'
            f'<statistic extent="1" center="0 0 0"/>'
            f'<visual><global offwidth="{max_image}" offheight="{max_image}"/>'
            f'<map znear="{_ZNEAR}" zfar="{_ZFAR}"/><quality shadowsize="0" offsamples="0"/></visual>{asset}'
            f'<worldbody>{"".join(geoms)}<camera name="depth" pos="0 0 1"/></worldbody></mujoco>')


def camera_matrix(yaw: float) -> np.ndarray:
    """(9,) row-major world-from-camera rotation of a camera looking along heading `yaw` (MuJoCo cameras
    look along their -z with +y up)."""
    s, c = (float(v) for v in portable.sincos(yaw))
    right, up, back = (s, -c, 0.0), (0.0, 0.0, 1.0), (-c, -s, 0.0)
    return np.column_stack([right, up, back]).ravel()


_GL = None


def _metric_depth(raw: np.ndarray) -> np.ndarray:
    """Reversed-z float depth buffer values -> metric z-depth [m] (as mujoco.Renderer converts them), with
    NavDP's clipping: outside [DEPTH_MIN, DEPTH_MAX] (and non-finite) -> 0."""
    near, far = np.float32(_ZNEAR), np.float32(_ZFAR)
    c = np.float32(-0.5) * (-(far + near) / (far - near)) - np.float32(0.5)
    d = np.float32(-0.5) * (-(np.float32(2) * far * near) / (far - near))
    depth = (float(d) / (raw.astype(np.float64) + float(c))).astype(np.float32)
    depth[~((depth >= DEPTH_MIN) & (depth <= DEPTH_MAX))] = 0.0  # NaN and inf fail both tests
    return depth


def _gl_context():
    """One offscreen GL context per process (MUJOCO_GL, default egl), shared by every world's renderer."""
    global _GL
    if _GL is None:
        import mujoco

        _GL = mujoco.GLContext(_MAX_IMAGE, _MAX_IMAGE)
    return _GL


class RobotMap:
    """The planner's map of one world for one robot: grid + ESDF of its height slice, search graphs, and
    a small cache of Dijkstra fields.

    Attributes:
        primitives: the primitives that block the robot.
        grid: occupancy + ESDF at GRID_RESOLUTION.
        need: ESDF [m] a cell needs to be traversable (robot radius + PLAN_MARGIN).
        traversable: (H, W) bool.
        cost: (H, W) float64 >= 1, the clearance penalty factor of each cell.
    """

    def __init__(self, primitives: Primitives, bounds: np.ndarray, robot: RobotProfile,
                 resolution: float = GRID_RESOLUTION):
        self.primitives = primitives
        self.grid: GridMap = rasterize(primitives, bounds, resolution)
        self.need = robot.radius + PLAN_MARGIN
        self.traversable = self.grid.esdf >= self.need
        closeness = np.clip(1.0 - (self.grid.esdf - self.need) / PENALTY_DISTANCE, 0.0, 1.0)
        self.cost = 1.0 + PENALTY_WEIGHT * (closeness * closeness)
        self._graphs: dict[bool, object] = {}
        self._fields: OrderedDict[tuple[bool, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def graph(self, penalized: bool):
        """The grid graph of the traversable cells (edges weighted by `cost` if `penalized`), cached."""
        if penalized not in self._graphs:
            self._graphs[penalized] = grid_graph(self.traversable, self.grid.resolution,
                                                 self.cost if penalized else None)
        return self._graphs[penalized]

    def field(self, penalized: bool, node: int) -> tuple[np.ndarray, np.ndarray]:
        """(cost to `node`, predecessor towards `node`) of every cell."""
        key = (penalized, int(node))
        if key in self._fields:
            self._fields.move_to_end(key)
            return self._fields[key]
        self._fields[key] = shortest_field(self.graph(penalized), node)
        while len(self._fields) > _FIELD_CACHE:
            self._fields.popitem(last=False)
        return self._fields[key]

    def node(self, xy: np.ndarray) -> int | None:
        """The traversable cell holding `xy` (2,), else the nearest within SNAP_DISTANCE, else None."""
        rows, cols, inside = self.grid.cells(xy)
        h, w = self.traversable.shape
        if inside[0] and self.traversable[rows[0], cols[0]]:
            return int(rows[0] * w + cols[0])
        reach = math.ceil(SNAP_DISTANCE / self.grid.resolution)
        r0, r1 = max(rows[0] - reach, 0), min(rows[0] + reach + 1, h)
        c0, c1 = max(cols[0] - reach, 0), min(cols[0] + reach + 1, w)
        rr, cc = np.nonzero(self.traversable[r0:r1, c0:c1])
        if len(rr) == 0:
            return None
        d = portable.norm(self.grid.centres(rr + r0, cc + c0) - np.asarray(xy, dtype=np.float64))
        k = int(np.argmin(d))
        return int((rr[k] + r0) * w + cc[k] + c0) if d[k] <= SNAP_DISTANCE else None

    def centres(self, nodes: np.ndarray) -> np.ndarray:
        """(K, 2) world xy [m] of the cells `nodes` (K,) (flat indices into the grid)."""
        w = self.traversable.shape[1]
        return self.grid.centres(nodes // w, nodes % w)

    def cell_path(self, start: np.ndarray, goal: np.ndarray, penalized: bool) -> np.ndarray | None:
        """(P, 2) start, the cell centres of the best grid path, goal; None when unreachable."""
        s, g = self.node(start), self.node(goal)
        if s is None or g is None:
            return None
        _, pred = self.field(penalized, g)
        nodes = trace(pred, g, s)
        if nodes is None:
            return None
        return np.vstack([np.asarray(start, dtype=np.float64)[None], self.centres(nodes),
                          np.asarray(goal, dtype=np.float64)[None]])

    def taut(self, points: np.ndarray, comfort: float) -> np.ndarray:
        """`points` string-pulled, never closer to obstacles than min(comfort, the path's own clearance)."""
        threshold = np.minimum(self.grid.esdf_at(points), comfort)
        return pull_string(points, self.grid.esdf_at, threshold, self.grid.resolution / 2)


class MujocoNavWorld:
    """A NavWorld on MuJoCo (see the module docstring). Implements NavWorldInterface.

    Attributes:
        world: the NavWorld.
        world_id: world.world_id.
        bounds: (4,) xmin, ymin, xmax, ymax [m].
    """

    def __init__(self, world: NavWorld):
        self.world = world.validate()
        self.world_id = world.world_id
        self.bounds = world.bounds.copy()
        self.primitives = world.primitives()
        self._maps: dict[RobotProfile, RobotMap] = {}
        self._points: dict[RobotProfile, np.ndarray] = {}
        # mujoco's model, data, render context, scene, options and camera (untyped), built on first use
        self._model: Any
        self._data: Any
        self._context: Any
        self._scene: Any
        self._option: Any
        self._camera: Any
        self._model = self._data = self._context = self._scene = self._option = self._camera = None

    # --- MuJoCo ---
    def _mujoco(self):
        os.environ.setdefault("MUJOCO_GL", "egl")
        import mujoco

        if self._model is None:
            self._model = mujoco.MjModel.from_xml_string(world_mjcf(self.world))
            self._data = mujoco.MjData(self._model)
            mujoco.mj_forward(self._model, self._data)
        return mujoco

    def _prepare_render(self):
        mujoco = self._mujoco()
        _gl_context().make_current()
        if self._context is None:
            self._context = mujoco.MjrContext(self._model, mujoco.mjtFontScale.mjFONTSCALE_100)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
            self._context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
            self._scene = mujoco.MjvScene(self._model, maxgeom=len(self.primitives) + 8)
            flags = mujoco.mjtRndFlag
            for flag, on in ((flags.mjRND_SEGMENT, True), (flags.mjRND_IDCOLOR, True),  # flat colours, no lights
                             (flags.mjRND_SKYBOX, False), (flags.mjRND_REFLECTION, False),
                             (flags.mjRND_SHADOW, False), (flags.mjRND_HAZE, False)):
                self._scene.flags[flag] = on
            self._option, self._camera = mujoco.MjvOption(), mujoco.MjvCamera()
            self._camera.type, self._camera.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, 0
        return mujoco

    def render_depth(self, pose: np.ndarray, camera: CameraSpec) -> np.ndarray:
        """(H, W) float32 z-depth [m] from robot `pose` (3,); NavDP's clipping (outside [0.1, 5] m -> 0)."""
        return self.render_depth_batch(np.asarray(pose, dtype=np.float64)[None], camera)[0]

    def render_depth_batch(self, poses: np.ndarray, camera: CameraSpec) -> np.ndarray:
        """(T, H, W) float32 depth from poses (T, 3): `render_depth` of each, drawn as tiles of one offscreen
        buffer and read back together (one GPU/llvmpipe sync per buffer, not per frame)."""
        mujoco = self._prepare_render()
        poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
        w, h = camera.width, camera.height
        self._model.cam_fovy[0] = math.degrees(2 * math.atan(math.tan(math.radians(camera.hfov_deg) / 2) * h / w))
        cols, rows = _MAX_IMAGE // w, _MAX_IMAGE // h
        out = np.empty((len(poses), h, w), np.float32)
        for first in range(0, len(poses), cols * rows):
            chunk = poses[first:first + cols * rows]
            for k, (x, y, yaw) in enumerate(chunk):
                self._data.cam_xpos[0] = (x, y, camera.mount_height)
                self._data.cam_xmat[0] = camera_matrix(yaw)
                mujoco.mjv_updateScene(self._model, self._data, self._option, None, self._camera,
                                       mujoco.mjtCatBit.mjCAT_ALL, self._scene)
                mujoco.mjr_render(mujoco.MjrRect((k % cols) * w, (k // cols) * h, w, h), self._scene,
                                  self._context)
            used = -(-len(chunk) // cols)
            width = w * min(cols, len(chunk))
            buffer = np.empty((used * h, width), np.float32)
            mujoco.mjr_readPixels(None, buffer, mujoco.MjrRect(0, 0, width, used * h), self._context)
            for k in range(len(chunk)):  # OpenGL rows run bottom-up; tile k sits at row k // cols from below
                r, c = k // cols, k % cols
                out[first + k] = _metric_depth(buffer[r * h:(r + 1) * h, c * w:(c + 1) * w][::-1])
        return out

    def ray_distances(self, origin: np.ndarray, directions: np.ndarray, max_distance: float = 50.0) -> np.ndarray:
        """(N,) distance [m] along unit `directions` (N, 3) from `origin` (3,) to the first geom hit (MuJoCo
        ray casting, mj_multiRay); inf when nothing is hit within `max_distance`."""
        mujoco = self._mujoco()
        directions = np.ascontiguousarray(directions, dtype=np.float64).reshape(-1, 3)
        n = len(directions)
        dist = np.zeros(n)
        geomid = np.zeros(n, dtype=np.int32)
        groups = np.array([1, 0, 0, 1, 0, 0], dtype=np.uint8)  # the floor and the primitives, not the mesh
        mujoco.mj_multiRay(self._model, self._data, np.asarray(origin, dtype=np.float64), directions.ravel(),
                           groups, 1, -1, geomid, dist, None, n, max_distance)
        return np.where(geomid >= 0, dist, np.inf)

    def close(self) -> None:
        """Free the GL resources of this world (it stays usable; they are rebuilt on demand)."""
        if self._context is not None:
            _gl_context().make_current()
            self._context.free()
        self._context = self._scene = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_model", "_data", "_context", "_scene", "_option", "_camera"):
            state[key] = None
        state["_maps"] = {}
        return state

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- geometry per robot ---
    def robot_map(self, robot: RobotProfile) -> RobotMap:
        """The RobotMap of `robot`, built on first use."""
        if robot not in self._maps:
            self._maps[robot] = RobotMap(self.primitives.blocking(robot), self.bounds, robot)
        return self._maps[robot]

    def obstacle_points(self, robot: RobotProfile) -> np.ndarray:
        """(K, 2) points on the outlines of the obstacles that block `robot`, 5 cm apart (critic targets)."""
        if robot not in self._points:
            self._points[robot] = self.primitives.blocking(robot).surface_points()
        return self._points[robot]

    def clearance(self, xy: np.ndarray, robot: RobotProfile) -> np.ndarray:
        """(N,) distance [m] to the nearest footprint in `robot`'s height slice or to the world's edge."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        edge = np.minimum(xy - self.bounds[:2], self.bounds[2:] - xy).min(axis=1)
        return np.minimum(self.robot_map(robot).primitives.distance(xy), np.maximum(edge, 0.0))

    def collides(self, xy: np.ndarray, robot: RobotProfile) -> np.ndarray:
        """(N,) bool: the robot's enclosing disc at the points overlaps an obstacle or leaves the world."""
        return self.clearance(xy, robot) < robot.radius

    def shortest_path(self, start: np.ndarray, goal: np.ndarray, robot: RobotProfile) -> np.ndarray | None:
        """(P, 2) shortest obstacle-free path (taut, any-angle) from start to goal for `robot`, or None."""
        rmap = self.robot_map(robot)
        points = rmap.cell_path(start, goal, penalized=False)
        return None if points is None else rmap.taut(points, rmap.need)

    def geodesic_distance(self, start: np.ndarray, goal: np.ndarray, robot: RobotProfile) -> float:
        """Length [m] of `shortest_path`, or inf if unreachable."""
        path = self.shortest_path(start, goal, robot)
        return math.inf if path is None else path_length(path)

    def obstacle_footprints(self, robot: RobotProfile) -> list:
        """Shapely polygons of the primitives that block `robot` (walls included)."""
        return self.robot_map(robot).primitives.footprints()
