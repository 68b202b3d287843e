"""Speed benchmarks behind `diffplan bench NAME`. Each returns a flat dict of figures."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def bench_scenes(seconds: float) -> dict[str, float]:
    """Synthetic scene generation on one core, round-robin over scenario types, then store write/read."""
    from scenes.drive import SPLITS
    from scenes.store import DriveDataset, finalize_dataset, write_shard
    from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene, scene_seed

    generate_scene(scene_seed("train", 0, 0), "train")  # warm caches and imports
    scenes: list[Any] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(scenes) < len(SYNTHETIC_SCENARIOS):
        i = len(scenes)
        scenario = SYNTHETIC_SCENARIOS[i % len(SYNTHETIC_SCENARIOS)]
        scenes.append(generate_scene(scene_seed(SPLITS[0], 0, i), SPLITS[0], scenario))
    generate_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_shard(root, 0, scenes)
        finalize_dataset(root, {"bench": True}, 1)
        write_s = time.perf_counter() - start
        size = sum(f.stat().st_size for f in root.rglob("*.parquet"))
        start = time.perf_counter()
        data = DriveDataset.open(root)
        for i in range(len(data)):
            data[i]
        read_s = time.perf_counter() - start
    return {
        "scenes_per_s": round(len(scenes) / generate_s, 2),
        "scenes": len(scenes),
        "store_write_scenes_per_s": round(len(scenes) / write_s, 1),
        "store_read_scenes_per_s": round(len(scenes) / read_s, 1),
        "store_bytes_per_scene": round(size / len(scenes)),
        "cpu_count": os.cpu_count() or 1,
    }


BENCHMARKS: dict[str, Callable[[float], dict[str, float]]] = {"scenes": bench_scenes}  # more below


def bench_pdms(seconds: float) -> dict[str, float]:
    """NAVSIM scoring throughput on one core with a metric cache, as NAVSIM's metric cache holds one.

    Cached per scene (built before timing): PDM-Closed's simulated states and their sub-metrics, and the
    scene's map geometry (drivable area, lanes, centreline). Timed: simulate every scene's plan (LQR +
    bicycle, one batched call) and score it against the reference (PDMS v1.1). `..._with_geometry` also
    rebuilds the map geometry of every scene inside the timed loop.
    """
    import numpy as np

    import planners
    from eval.scoring import reference_states, simulate_scene_plans
    from planners.pdm.scoring import SceneGeometry, ScorerConfig, score_proposals, score_reference
    from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene, scene_seed

    scenes = [generate_scene(scene_seed("test", 0, i), "test", SYNTHETIC_SCENARIOS[i % len(SYNTHETIC_SCENARIOS)])
              for i in range(100)]
    config = ScorerConfig()
    geometries = [SceneGeometry.from_scene(scene) for scene in scenes]
    references = [score_reference(g, reference_states(s), config) for g, s in zip(geometries, scenes)]
    planner = planners.load("constant-velocity")
    plans = np.stack([planner.plan(scene.observation()).trajectory.poses for scene in scenes])

    def run(rebuild_geometry: bool, budget: float) -> float:
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < budget or done == 0:
            states = simulate_scene_plans(scenes, plans)
            for scene, geometry, state, reference in zip(scenes, geometries, states, references):
                if rebuild_geometry:
                    geometry = SceneGeometry.from_scene(scene)
                score_proposals(geometry, state[None], reference, config)
            done += len(scenes)
        return done / (time.perf_counter() - start)

    return {
        "scenes_per_s_per_core": round(run(False, seconds), 1),
        "scenes_per_s_per_core_with_geometry": round(run(True, seconds / 2), 1),
        "proposals_per_scene": 2,
        "navsim_v1_1_reference_scenes_per_s": 56,
    }


BENCHMARKS["pdms"] = bench_pdms


def bench_stl(seconds: float) -> dict[str, float]:
    """Batched exact STL robustness against stlpy (4,096 signals of 41 steps, a 16-node driving spec)."""
    from stl.bench import bench_stl as run

    return run(seconds)


BENCHMARKS["stl"] = bench_stl


def bench_trajopt(seconds: float, compiled: bool = False, solver: str = "ipopt") -> dict[str, float]:
    """Warm-started bicycle solves at N = 40 with obstacles, lane bounds and STL rules."""
    from trajopt.bench import bench_trajopt as run

    return run(seconds, compiled=compiled, solver=solver)


def bench_datagen(seconds: float, compiled: bool = False, solver: str = "ipopt") -> dict[str, float]:
    """End-to-end expert demonstrations per second on one core (worlds, solves, demos, shard writes)."""
    from datagen.bench import bench_datagen as run

    return run(seconds, compiled=compiled, solver=solver)


BENCHMARKS["trajopt"] = bench_trajopt
BENCHMARKS["datagen"] = bench_datagen
# the same with the solver's options: NAME-compiled (C functions; the first run builds them, minutes),
# NAME-fatrop (fatrop instead of IPOPT), NAME-fatrop-compiled
for _name, _bench in (("trajopt", bench_trajopt), ("datagen", bench_datagen)):
    for _suffix, _compiled, _solver in (("compiled", True, "ipopt"), ("fatrop", False, "fatrop"),
                                        ("fatrop-compiled", True, "fatrop")):
        BENCHMARKS[f"{_name}-{_suffix}"] = functools.partial(_bench, compiled=_compiled, solver=_solver)


def bench_planner(seconds: float) -> dict:
    """Batch-1 CPU latency (one thread) of DiffusionDrive, the 20-step diffusion policy, regression and
    ego-mlp on the same encoder, and the ratio diffusion-policy / DiffusionDrive (goal >= 8)."""
    from planners.bench import bench_planners

    return bench_planners(seconds)


BENCHMARKS["planner"] = bench_planner


def bench_navgen(seconds: float) -> dict[str, float]:
    """Nav expert trajectories (with their depth frames) per second on one core, end to end."""
    from datagen.bench import bench_navgen as run

    return run(seconds)


BENCHMARKS["navgen"] = bench_navgen


def bench_startup(seconds: float) -> dict[str, float]:
    """Wall time of `diffplan --help` and `diffplan --version` in fresh processes (median of at least 5)."""
    import statistics
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "diffplan"
    figures = {}
    for name, args in (("help", ["--help"]), ("version", ["--version"])):
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < 5 or time.perf_counter() - start < seconds / 2:
            began = time.perf_counter()
            subprocess.run([str(exe), *args], check=True, capture_output=True)
            times.append(time.perf_counter() - began)
        figures[f"{name}_s"] = round(statistics.median(times), 3)
    return figures


BENCHMARKS["startup"] = bench_startup


IMPORT_BENCH_SCENES = 100  # distinct synthetic scenes exported as logs
IMPORT_BENCH_COPIES = (3, 10)  # each log copied (new log name and tokens) this often: 300 and 1,000 logs


def _import_fixture(root: Path, copies: int) -> tuple[Path, Path]:
    """(logs, maps) of IMPORT_BENCH_SCENES exported scenes, each log copied `copies` times under new names and
    tokens; with frame_interval 1 each 15-frame log has 2 full NAVSIM windows."""
    from scenes.adapters.pickles import restricted_load
    from scenes.exporters.openscene import write_log
    from scenes.exporters.openscene_dataset import export_openscene
    from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene, scene_seed

    source = root / "export"
    if not (source / "maps").is_dir():
        scenes = (generate_scene(scene_seed("test", 0, i), "test", SYNTHETIC_SCENARIOS[i % len(SYNTHETIC_SCENARIOS)])
                  for i in range(IMPORT_BENCH_SCENES))
        export_openscene(scenes, source)
    logs = root / f"logs-{copies}"
    logs.mkdir(exist_ok=True)
    for path in sorted((source / "logs").glob("*.pkl")):
        frames = restricted_load(path)
        assert isinstance(frames, list)
        for copy in range(copies):
            name = f"{path.stem}-copy{copy}"
            for frame in frames:
                frame["log_name"] = name
                frame["token"] = f"{copy:02x}" + frame["token"][2:]
            write_log(logs / f"{name}.pkl", frames)
    return logs, source / "maps"


def _import_in_fresh_process(imports: str, config_args: list[str], out: Path) -> dict:
    """Run an import job (`imports` binds Config and Job) with Config(*config_args) into `out` in a fresh
    one-thread process: {"s": seconds, "kept": scenes, "units": units, "rss_kb": its peak RSS}."""
    import json
    import subprocess
    import sys

    script = (f"import json, resource, sys, time\n{imports}\n"
              "from diffplan.jobs import run_job\n"
              "start = time.perf_counter()\n"
              "info, reports = run_job(Job(Config(*sys.argv[2:])), sys.argv[1])\n"
              "print(json.dumps({'s': time.perf_counter() - start, 'kept': info.num_episodes, "
              "'units': len(reports), 'rss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, str(out), *config_args], check=True, capture_output=True,
                          text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_import(seconds: float) -> dict[str, float]:
    """`diffplan scenes import openscene` on one core over exported synthetic logs (2 windows per log), in a
    fresh process per run: windows per second and the process's peak RSS, for 300 and 1,000 logs (flat
    memory means streaming). Then PDMS v1.1 scoring throughput on the imported scenes against the same
    scenes as generated."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        yaml_path = root / "filter.yaml"
        yaml_path.write_text("num_history_frames: 4\nnum_future_frames: 10\nframe_interval: 1\nhas_route: true\n")
        for copies in IMPORT_BENCH_COPIES:
            logs, maps = _import_fixture(root, copies)
            out = root / f"data-{copies}"
            run = _import_in_fresh_process(
                "from scenes.adapters.import_job import OpenSceneImportConfig as Config, OpenSceneImportJob as Job",
                [str(logs), str(maps), str(yaml_path)], out)
            tag = f"{run['units']}_logs"
            figures[f"windows_{tag}"] = run["kept"]
            figures[f"windows_per_s_per_core_{tag}"] = round(run["kept"] / run["s"], 1)
            figures[f"peak_rss_mb_{tag}"] = round(run["rss_kb"] / 1024, 1)
        largest = f"{IMPORT_BENCH_SCENES * IMPORT_BENCH_COPIES[-1]}_logs"
        figures["windows_per_s_per_core"] = figures[f"windows_per_s_per_core_{largest}"]
        figures["peak_rss_mb"] = figures[f"peak_rss_mb_{largest}"]
        figures.update(_pdms_imported_vs_synthetic(root / f"data-{IMPORT_BENCH_COPIES[0]}",
                                                   IMPORT_BENCH_COPIES[0], seconds))
    return figures


def _pdms_imported_vs_synthetic(imported: Path, copies: int, seconds: float) -> dict[str, float]:
    """PDMS v1.1 scenes per second on one core (constant-velocity plans, geometry rebuilt per scene) on 100
    imported scenes and on the 100 synthetic scenes they were exported from. The imported dataset holds 2
    windows per log and `copies` logs per scene; the second window of a scene's first copy is the scene."""
    import numpy as np

    import planners
    from eval.scoring import reference_states, simulate_scene_plans
    from planners.pdm.scoring import SceneGeometry, ScorerConfig, score_proposals, score_reference
    from scenes.store import DriveDataset
    from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene, scene_seed

    data = DriveDataset(imported)
    sets = {
        "imported": [data[2 * copies * i + 1] for i in range(IMPORT_BENCH_SCENES)],
        "synthetic": [generate_scene(scene_seed("test", 0, i), "test", SYNTHETIC_SCENARIOS[i % len(SYNTHETIC_SCENARIOS)])
                      for i in range(IMPORT_BENCH_SCENES)],
    }
    planner, config, out = planners.load("constant-velocity"), ScorerConfig(), {}
    for name, scenes in sets.items():
        plans = np.stack([planner.plan(scene.observation()).trajectory.poses for scene in scenes])
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 2 or done == 0:
            states = simulate_scene_plans(scenes, plans)
            for scene, state in zip(scenes, states):
                geometry = SceneGeometry.from_scene(scene)
                score_proposals(geometry, state[None], score_reference(geometry, reference_states(scene), config),
                                config)
            done += len(scenes)
        out[f"pdms_scenes_per_s_per_core_{name}"] = round(done / (time.perf_counter() - start), 1)
    return out


BENCHMARKS["import"] = bench_import


NUSCENES_BENCH_SCENES = (10, 40)  # exported synthetic scenes per run (2 full windows each)


def bench_import_nuscenes(seconds: float) -> dict[str, float]:
    """`diffplan scenes import nuscenes` (through nuscenes-devkit) on one core over exported synthetic scenes
    (15 keyframes, 2 full windows each), in a fresh process per run: windows per second and the process's
    peak RSS for 10 and 40 scenes, and the time to open the tables (devkit import included)."""
    from scenes.exporters.nuscenes import export_nuscenes
    from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene, scene_seed

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in NUSCENES_BENCH_SCENES:
            root = Path(tmp) / f"nuscenes-{count}"
            scenes = [generate_scene(scene_seed("test", 0, i), "test", SYNTHETIC_SCENARIOS[i % len(SYNTHETIC_SCENARIOS)])
                      for i in range(count)]
            export_nuscenes(scenes, root, version="v1.0-synth")
            split = "mini_train" if count <= 10 else "test"  # more than 10 take real names of their split
            run = _import_in_fresh_process(
                "from scenes.adapters.nuscenes_job import NuScenesImportConfig as Config, NuScenesImportJob as Job",
                [str(root), "v1.0-synth", split], Path(tmp) / f"data-{count}")
            tag = f"{run['units']}_scenes"
            figures[f"windows_{tag}"] = run["kept"]
            figures[f"seconds_{tag}"] = round(run["s"], 2)
            figures[f"windows_per_s_per_core_{tag}"] = round(run["kept"] / run["s"], 1)
            figures[f"peak_rss_mb_{tag}"] = round(run["rss_kb"] / 1024, 1)
        largest = f"{NUSCENES_BENCH_SCENES[-1]}_scenes"
        figures["windows_per_s_per_core"] = figures.get(f"windows_per_s_per_core_{largest}", 0.0)
        figures["peak_rss_mb"] = figures.get(f"peak_rss_mb_{largest}", 0.0)
    return figures


BENCHMARKS["import-nuscenes"] = bench_import_nuscenes


def _latency_figures(name: str, latencies_ms: list[float]) -> dict[str, float]:
    import numpy as np

    values = np.asarray(latencies_ms)
    return {f"{name}_latency_ms_p50": round(float(np.percentile(values, 50)), 1),
            f"{name}_latency_ms_p95": round(float(np.percentile(values, 95)), 1), f"{name}_plans": len(values)}


def _nav_node_latencies(checkpoint: str, seconds: float) -> list[float]:
    """Depth message in -> Path out [ms] of a NavNodeCore on pointnav-synth episode starts (one thread)."""
    import numpy as np

    import planners
    from diffplan.node import messages
    from diffplan.node.interface import InputRole, OutputRole
    from diffplan.node.nav_core import NavNodeCore
    from diffplan.node.params import NodeParams
    from eval.pointnav.benchmark import load_benchmark
    from eval.pointnav.loop import LoopConfig
    from eval.pointnav.runner import WorldCache

    episodes = load_benchmark("pointnav-synth", "wheeled")[:: 10]
    worlds, camera = WorldCache("eval.pointnav.runner:synthetic_world"), LoopConfig().camera
    core = NavNodeCore(planners.load(checkpoint), "wheeled", NodeParams(goal_tolerance_m=0.0))
    core.warm_up()
    latencies: list[float] = []
    start = time.perf_counter()
    while len(latencies) < 30 or time.perf_counter() - start < seconds:
        episode = episodes[len(latencies) % len(episodes)]
        pose, goal = np.asarray(episode.start, np.float64), np.asarray(episode.goal, np.float64)
        depth = np.asarray(worlds.get(episode.world_id).render_depth(pose, camera), np.float32)
        now = 100.0 + 0.25 * len(latencies)
        core.on_message(InputRole.GOAL, messages.pose_stamped(now, "odom", goal[0], goal[1], 0.0), now)
        core.on_message(InputRole.ODOMETRY, messages.odometry(now, "odom", "base_link", *pose), now)
        image = messages.depth_image(now, "camera", depth, "16UC1")
        began = time.perf_counter()
        core.on_message(InputRole.DEPTH, image, now)
        outputs = core.plan_tick(now)
        latency = 1e3 * (time.perf_counter() - began)
        if any(o.role is OutputRole.PLAN for o in outputs):
            latencies.append(latency)
        elif len(latencies) == 0 and time.perf_counter() - start > 10 * seconds:
            raise RuntimeError(f"the node made no plan: {core.safety.lines[-3:]}")
    return latencies


def _vehicle_node_latencies(checkpoint: str, seconds: float) -> list[float]:
    """Odometry message in -> Path out [ms] of a VehicleNodeCore (odometry, detections and route from
    synthetic test scenes at 10 Hz; timed: the last odometry message and the plan tick)."""
    import numpy as np
    import shapely

    import planners
    from diffplan.node import messages
    from diffplan.node.core import VehicleNodeCore
    from diffplan.node.interface import InputRole, OutputRole
    from diffplan.node.params import NodeParams
    from scenes.agents import AgentCategory
    from scenes.drive import CURRENT_INDEX, SIM_DT
    from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene, scene_seed

    names = {AgentCategory.VEHICLE: "vehicle", AgentCategory.PEDESTRIAN: "pedestrian",
             AgentCategory.BICYCLE: "bicycle", AgentCategory.STATIC_OBJECT: "static"}
    planner = planners.load(checkpoint)
    scenes = [generate_scene(scene_seed("test", 0, i), "test", SYNTHETIC_SCENARIOS[i % len(SYNTHETIC_SCENARIOS)])
              for i in range(10)]
    latencies: list[float] = []
    start = time.perf_counter()
    while len(latencies) < 30 or time.perf_counter() - start < seconds:
        scene = scenes[len(latencies) % len(scenes)]
        core = VehicleNodeCore(planner, scene.map, NodeParams(plan_timeout_s=60.0))
        ego, agents = scene.ego, scene.agents
        xy = shapely.get_coordinates(scene.route.centerline)
        yaw = np.arctan2(np.diff(xy[:, 1]), np.diff(xy[:, 0]))
        core.on_message(InputRole.ROUTE, messages.path(0.0, "odom", np.column_stack([xy, np.append(yaw, yaw[-1])])),
                        0.0)
        for i in range(CURRENT_INDEX + 1):
            t = i * SIM_DT
            boxes = [messages.detection(t, "odom", int(agents.track_ids[a]), names[AgentCategory(agents.category[a])],
                                        float(agents.xy[a, i, 0]), float(agents.xy[a, i, 1]),
                                        float(agents.heading[a, i]), float(agents.size[a, 0]),
                                        float(agents.size[a, 1]))
                     for a in np.flatnonzero(agents.valid[:, i])]
            core.on_message(InputRole.DETECTIONS, messages.detection_array(t, "odom", boxes), t)
            x, y, heading = (float(v) for v in ego.pose[i])
            odometry = messages.odometry(t, "odom", "base_link", x, y, heading, float(ego.velocity[i, 0]),
                                         float(ego.yaw_rate[i]), float(ego.velocity[i, 1]))
            if i < CURRENT_INDEX:
                core.on_message(InputRole.ODOMETRY, odometry, t)
        began = time.perf_counter()
        core.on_message(InputRole.ODOMETRY, odometry, t)
        outputs = core.plan_tick(t)
        latency = 1e3 * (time.perf_counter() - began)
        if not any(o.role is OutputRole.PLAN for o in outputs):
            raise RuntimeError(f"the vehicle node made no plan: {core.safety.lines[-3:]}")
        latencies.append(latency)
    return latencies


def bench_node(seconds: float) -> dict[str, float]:
    """`diffplan node` latency on one core: a depth image message in to the Path out (decode, resize, plan,
    messages), NavDP (navdp-synth, 16 samples and the critic) and go-to-goal for reference, on pointnav-synth
    episode starts; and the vehicle node with DiffusionDrive (diffusiondrive-synth): the last odometry message in
    to the 8-pose Path out, on synthetic test scenes. `latency_ms_p50`/`_p95` are NavDP's (the goal: p95 under
    100 ms)."""
    import torch

    torch.set_num_threads(1)
    navdp = _nav_node_latencies(str(Path(__file__).resolve().parents[1] / "checkpoints" / "navdp-synth.safetensors"),
                                seconds)
    figures = _latency_figures("navdp", navdp)
    figures |= {"latency_ms_p50": figures["navdp_latency_ms_p50"], "latency_ms_p95": figures["navdp_latency_ms_p95"]}
    figures |= _latency_figures("go_to_goal", _nav_node_latencies("go-to-goal", seconds / 4))
    figures |= _latency_figures("diffusiondrive", _vehicle_node_latencies(
        str(Path(__file__).resolve().parents[1] / "checkpoints" / "diffusiondrive-synth.safetensors"), seconds / 2))
    figures["torch_threads"] = 1
    return figures


BENCHMARKS["node"] = bench_node


def _closed_loop_figures(planner_name: str, mode: str, seconds: float, duration: float) -> dict[str, Any]:
    """Closed-loop scenarios of navtest-synth on one core until `seconds` are spent: simulated planner calls
    per second with the planner's own time taken out, and the scoring time per scenario."""
    import numpy as np

    import planners
    from eval.closed_loop import score_rollout
    from eval.closed_loop.job import LogSource
    from eval.closed_loop.simulation import AgentMode, SimulationConfig, simulate_log
    from scenes.digest import combined_digest, content_digest

    config = SimulationConfig(duration=duration, agents=AgentMode(mode))
    log = LogSource("navtest-synth", duration).open()
    planner = planners.load(planner_name)
    calls, loop_s, planner_s, score_s = 0, 0.0, 0.0, 0.0
    digests: list[str] = []
    while loop_s < seconds or not digests:
        scenario = log(len(digests))
        digests.append(content_digest(scenario))
        start = time.perf_counter()
        result = simulate_log(scenario, planner, config)
        middle = time.perf_counter()
        score_rollout(result.rollout, config.agents.reactive)
        score_s += time.perf_counter() - middle
        loop_s += middle - start
        calls += len(result.calls)
        planner_s += 1e-3 * float(np.sum([call.latency_ms for call in result.calls]))
    prefix = f"{planner_name}_{mode}"
    return {f"{prefix}_planner_calls_per_s_per_core": round(calls / max(loop_s - planner_s, 1e-9), 1),
            f"{prefix}_calls_per_s_with_planner": round(calls / loop_s, 1),
            f"{prefix}_planner_ms_per_call": round(1e3 * planner_s / calls, 2),
            f"{prefix}_score_ms_per_scenario": round(1e3 * score_s / len(digests), 1),
            f"{prefix}_scenarios": len(digests), f"{prefix}_logs_hash": combined_digest(digests)[:16]}


def bench_closed_loop(seconds: float) -> dict[str, float]:
    """`diffplan eval closed-loop`'s loop on one core: planner_calls_per_s_per_core is PDM-Closed's, on
    navtest-synth logs of 15 s with replayed agents, excluding the planner's own time (issue goal: >= 20);
    also with IDM agents, and the constant-velocity planner's."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    figures: dict[str, Any] = {}
    for planner_name, mode in (("pdm-closed", "replay"), ("pdm-closed", "idm"), ("constant-velocity", "replay")):
        figures.update(_closed_loop_figures(planner_name, mode, seconds, 15.0))
    figures["planner_calls_per_s_per_core"] = figures["pdm-closed_replay_planner_calls_per_s_per_core"]
    return figures


BENCHMARKS["closed-loop"] = bench_closed_loop


PSTL_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "pstl-synth.safetensors"
PSTL_VARIANTS = {  # name -> (sampler, steps, guidance: None, "last" or "every", guide iterations, refine rounds)
    "ddim10": ("ddim", 10, None, 0, 0), "ddim5": ("ddim", 5, None, 0, 0), "ddpm99": ("ddpm", None, None, 0, 0),
    "ddim10_guided": ("ddim", 10, "last", 1, 0), "ddim10_guided3": ("ddim", 10, "last", 3, 0),
    "ours": ("ddim", 10, "refine", 0, 1), "ours_guided": ("ddim", 10, "last", 1, 1),
    "ours_guided3": ("ddim", 10, "last", 3, 1), "ctg": ("ddpm", None, "every", 3, 0),
}
PSTL_WINDOW_BATCH = 192  # pSTL's Table I times batches of windows x 192 samples (64 per mode x 3 modes)
PSTL_WINDOW_BATCH_VARIANTS = ("ddim10", "ddim5", "ddpm99")


def bench_pstl(seconds: float) -> dict[str, float]:
    """pSTL's sampling on one thread, 64 samples of one observation, per sampler: DDIM 10 and 5 steps, pSTL's
    99 ancestral steps, DDIM 10 guided on the last 10 steps (1 and 3 Adam iterations), "ours" (DDIM 10 and one
    RefineNet round, when the checkpoint has one) alone and guided ("+guidance"), and CTG (99 ancestral steps
    guided 3 times each).

    Two times per sample [s]: `time_per_sample_s_*` of the whole `plan` call (vector features of the map and
    agents, about 10 ms per observation, included) and `sampling_time_per_sample_s_*` of the sampling alone
    (features built once: what pSTL's Table I times). Speed-ups as the issue's goals name them, on sampling
    time (`speedup_*`) and on the whole call (`speedup_*_plan`). The few-step samplers are also timed at
    pSTL's per-window batch of 192 samples (64 x 3 modes; `*_192`), where the scene encoder, run once per
    call, weighs a third as much per sample. The shipped checkpoint when present."""
    import statistics

    import torch

    import planners
    from eval.pstl.guide import stl_objective
    from planners.bench import drive_observation
    from planners.pstl.planner import GuidanceSettings, PstlPlanner, SamplingSettings

    torch.set_num_threads(1)
    planner = planners.load(PSTL_CHECKPOINT if PSTL_CHECKPOINT.exists() else "pstl")
    assert isinstance(planner, PstlPlanner)
    observation = drive_observation()
    features = planner.batched_features([observation])
    shipped = PSTL_CHECKPOINT.exists()
    figures: dict[str, Any] = {"checkpoint": PSTL_CHECKPOINT.name if shipped else "untrained"}
    variants = {name: v for name, v in PSTL_VARIANTS.items() if planner.refinable or not v[4]}
    budget = seconds / (2 * len(variants) + len(PSTL_WINDOW_BATCH_VARIANTS))

    def median_time(call: Any, samples: int = 64) -> float:
        call()  # warm-up: the first guided call pays one-off costs (autograd, caches) of about 1 s
        times: list[float] = []
        while not times or (sum(times) < budget and len(times) < 20):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times) / samples

    for name, (sampler, steps, guidance, iterations, rounds) in variants.items():
        planner.configure(sampling=SamplingSettings(sampler, steps, 64), guidance=GuidanceSettings(
            iterations, 0.01, None if guidance == "every" else 10, refine_rounds=rounds))
        planner.objective_builder = None if guidance is None else stl_objective
        with torch.no_grad():
            figures[f"sampling_time_per_sample_s_{name}"] = round(
                median_time(lambda: planner.propose(features, [observation])), 6)
        figures[f"time_per_sample_s_{name}"] = round(median_time(lambda: planner.plan(observation)), 6)
    for name in PSTL_WINDOW_BATCH_VARIANTS:  # pSTL's per-window batch: 64 samples x 3 modes in one call
        sampler, steps = PSTL_VARIANTS[name][:2]
        planner.configure(sampling=SamplingSettings(sampler, steps, PSTL_WINDOW_BATCH),
                          guidance=GuidanceSettings(0, 0.01, 10))
        planner.objective_builder = None
        with torch.no_grad():
            figures[f"sampling_time_per_sample_s_{name}_{PSTL_WINDOW_BATCH}"] = round(
                median_time(lambda: planner.propose(features, [observation]), PSTL_WINDOW_BATCH), 6)
    t = {name: figures[f"sampling_time_per_sample_s_{name}_{PSTL_WINDOW_BATCH}"]
         for name in PSTL_WINDOW_BATCH_VARIANTS}
    figures[f"speedup_ddim10_over_ddpm99_{PSTL_WINDOW_BATCH}"] = round(t["ddpm99"] / t["ddim10"], 2)
    figures[f"speedup_ddim5_over_ddpm99_{PSTL_WINDOW_BATCH}"] = round(t["ddpm99"] / t["ddim5"], 2)
    for kind, suffix in (("sampling_time_per_sample_s", ""), ("time_per_sample_s", "_plan")):
        t = {name: figures[f"{kind}_{name}"] for name in variants}
        figures[f"speedup_ddim10_over_ddpm99{suffix}"] = round(t["ddpm99"] / t["ddim10"], 2)
        figures[f"speedup_ddim5_over_ddpm99{suffix}"] = round(t["ddpm99"] / t["ddim5"], 2)
        figures[f"speedup_guided_over_ctg{suffix}"] = round(t["ctg"] / t["ddim10_guided"], 2)
        figures[f"speedup_guided3_over_ctg{suffix}"] = round(t["ctg"] / t["ddim10_guided3"], 2)
        if planner.refinable:
            figures[f"speedup_ours_guided_over_ctg{suffix}"] = round(t["ctg"] / t["ours_guided"], 2)
            figures[f"speedup_ours_guided3_over_ctg{suffix}"] = round(t["ctg"] / t["ours_guided3"], 2)
    return figures


BENCHMARKS["pstl"] = bench_pstl
