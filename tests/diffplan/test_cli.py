"""`diffplan` end to end through the installed console script: happy paths and one-line errors."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def run(exe: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *args], check=False, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "ds"
    exe = str(Path(__import__("sys").executable).parent / "diffplan")
    result = run(exe, "scenes", "generate", "--n", "6", "--shard-size", "4", "--seed", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote 6 scenes in 2 shard(s)" in result.stdout
    return out


def test_help_lists_subcommands(diffplan_exe):
    result = run(diffplan_exe, "--help")
    assert result.returncode == 0
    for word in ("scenes", "bench"):
        assert word in result.stdout
    result = run(diffplan_exe, "scenes", "generate", "--help")
    assert "--resume" in result.stdout and "--workers" in result.stdout


def test_stats_counts_every_scene(diffplan_exe, dataset):
    result = run(diffplan_exe, "scenes", "stats", str(dataset))
    assert result.returncode == 0, result.stderr
    all_row = [line for line in result.stdout.splitlines() if line.strip("│ ").startswith("all")]
    assert len(all_row) == 1 and all_row[0].split("│")[2].strip() == "6"


def test_show_writes_a_png(diffplan_exe, dataset, tmp_path):
    out = tmp_path / "pics" / "bev.png"
    result = run(diffplan_exe, "scenes", "show", str(dataset), "--index", "5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_resume_and_workers_give_the_same_bytes(diffplan_exe, dataset, tmp_path):
    args = ["scenes", "generate", "--n", "6", "--shard-size", "4", "--seed", "3"]
    parallel = tmp_path / "parallel"
    assert run(diffplan_exe, *args, "--workers", "2", "--out", str(parallel)).returncode == 0
    assert file_bytes(parallel) == file_bytes(dataset)
    # Kill-like state: shard 1 lost its completion marker and the consolidated table is gone.
    (parallel / "meta" / "episodes-00001.parquet").unlink()
    (parallel / "episodes.parquet").unlink()
    again = run(diffplan_exe, *args, "--out", str(parallel))
    assert_one_line_error(again, str(parallel), "--resume")
    assert run(diffplan_exe, *args, "--resume", "--out", str(parallel)).returncode == 0
    assert file_bytes(parallel) == file_bytes(dataset)
    changed = run(diffplan_exe, "scenes", "generate", "--n", "7", "--shard-size", "4", "--seed", "3",
                  "--resume", "--out", str(parallel))
    assert_one_line_error(changed, "n=6", "not 7")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--n", "0"], ["--n", "got 0"]),
        (["--n", "-3"], ["--n", "got -3"]),
        (["--split", "dev"], ["unknown split 'dev'"]),
        (["--scenario", "roundabout"], ["unknown scenario 'roundabout'"]),
        (["--workers", "0"], ["--workers", "got 0"]),
    ],
)
def test_generate_rejects_bad_options(diffplan_exe, tmp_path, args, needles):
    result = run(diffplan_exe, "scenes", "generate", "--out", str(tmp_path / "x"), *args)
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "x").exists()


def test_missing_and_foreign_paths(diffplan_exe, tmp_path):
    missing = tmp_path / "nope"
    assert_one_line_error(run(diffplan_exe, "scenes", "stats", str(missing)), str(missing))
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run(diffplan_exe, "scenes", "show", str(tmp_path / "empty")), str(tmp_path / "empty"))


def test_corrupt_and_mismatched_datasets(diffplan_exe, dataset, tmp_path):
    import shutil

    corrupt = tmp_path / "corrupt"
    shutil.copytree(dataset, corrupt)
    (corrupt / "shards" / "00001.parquet").write_bytes(b"not parquet at all")
    assert_one_line_error(run(diffplan_exe, "scenes", "show", str(corrupt), "--index", "4"), "00001.parquet")

    old = tmp_path / "old"
    shutil.copytree(dataset, old)
    info = json.loads((old / "info.json").read_text())
    info["schema_version"] = "diffplan-store/0"
    (old / "info.json").write_text(json.dumps(info))
    assert_one_line_error(run(diffplan_exe, "scenes", "stats", str(old)), "diffplan-store/0")

    assert_one_line_error(run(diffplan_exe, "scenes", "show", str(dataset), "--index", "6"), "--index 6")


def test_nan_in_a_shard_is_named(diffplan_exe, dataset, tmp_path):
    import shutil

    bad = tmp_path / "nan"
    shutil.copytree(dataset, bad)
    path = bad / "shards" / "00000.parquet"
    table = pq.read_table(path)
    name = next(n for n in table.column_names if "ego" in n and "pose" in n)
    column = table.column(name).combine_chunks()
    values = np.asarray(column.flatten()).copy()
    values[0] = np.nan
    flat = pa.array(values)
    rebuilt = (pa.FixedSizeListArray.from_arrays(flat, column.type.list_size)
               if pa.types.is_fixed_size_list(column.type)
               else pa.ListArray.from_arrays(column.offsets, flat))
    table = table.set_column(table.column_names.index(name), name, rebuilt)
    pq.write_table(table.replace_schema_metadata(pq.read_schema(path).metadata), path)
    result = run(diffplan_exe, "scenes", "show", str(bad), "--index", "0", "--out", str(tmp_path / "b.png"))
    assert_one_line_error(result, "non-finite")


def test_bench_json_last_line(diffplan_exe):
    result = run(diffplan_exe, "bench", "scenes", "--json", "--seconds", "0.5")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["scenes_per_s"] > 0 and figures["scenes"] >= 10
    assert_one_line_error(run(diffplan_exe, "bench", "nothing"), "unknown benchmark 'nothing'")


def test_progress_in_a_log_file_is_plain_lines():
    import io

    from rich.console import Console

    from diffplan.console import LogLines

    log = io.StringIO()
    bar = LogLines("demos", interval=0.0, console=Console(file=log, width=200))
    with bar:
        task = bar.add_task("solving", total=4)
        bar.update(task, advance=1, description="solving (failed: infeasible 1)")
        bar.advance(task, 3)
    lines = log.getvalue().splitlines()
    assert [line.split("  ")[:2] for line in lines] == [["solving (failed: infeasible 1)", "1/4 (25%)"],
                                                        ["solving (failed: infeasible 1)", "4/4 (100%)"],
                                                        ["solving (failed: infeasible 1)", "4/4 (100%)"]]
    assert "ETA" not in lines[-1]
    quiet = io.StringIO()
    with LogLines("demos", interval=0.0, console=Console(file=quiet)) as bar:
        bar.add_task("solving", total=4)
    assert quiet.getvalue() == ""  # nothing done: nothing to report (an error stays the only line)


def test_work_an_earlier_run_finished_moves_the_bar_but_not_the_rate():
    import io

    from rich.console import Console

    from diffplan.console import LogLines, count_done_before

    clock = [100.0]
    log = io.StringIO()
    with LogLines("demos", interval=0.0, console=Console(file=log, width=200), get_time=lambda: clock[0]) as bar:
        task = bar.add_task("solving", total=10)
        count_done_before(bar, task, 6)  # 6 demos from the interrupted run: no rate, no 600000 demos/s
        clock[0] += 2.0
        bar.advance(task, 1)  # one new demo in 2 s
        clock[0] += 2.0
        bar.advance(task, 1)
    lines = log.getvalue().splitlines()
    assert lines[:2] == ["solving  7/10 (70%)  0.50 demos/s  ETA 0:00:06",
                         "solving  8/10 (80%)  0.50 demos/s  ETA 0:00:04"]
