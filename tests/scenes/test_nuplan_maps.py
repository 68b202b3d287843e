"""nuPlan map GPKG reader and writer: a hand-built GPKG written with pyogrio directly, reprojection from
lon/lat, round trips of synthetic maps, and one-line SourceErrors for bad input."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pyproj
import pytest
import shapely

import scenes.adapters.nuplan_maps as nm
from scenes.adapters.errors import SourceError
from scenes.adapters.nuplan_maps import MAP_LOCATIONS, MAP_VERSION_FILE, NuplanMaps, maps_root
from scenes.exporters.nuplan_maps import write_map_gpkg, write_maps_root
from scenes.maps import DrivableKind, MapLayers
from scenes.synthetic import generate_scene, scenario_for_seed

UTM19 = "+proj=utm +zone=19 +datum=WGS84 +units=m +no_defs"
LOC = "us-ma-boston"
VERSION = "9.12.1883"
L, B, P = shapely.LineString, shapely.box, shapely.Polygon


@pytest.fixture(autouse=True, scope="module")
def _no_fsync():
    """Fixture GPKGs are scratch files: skip sqlite's fsync per layer."""
    previous = pyogrio.get_gdal_config_option("OGR_SQLITE_SYNCHRONOUS")
    pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": "OFF"})
    yield
    pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": previous})


def _obj(items):
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def _layer(path, name, geoms, fields, fids, crs, move, geometry_type="Polygon"):
    """Write one layer with pyogrio raw; `fields` maps name -> list (None = NULL)."""
    names, values, masks = ["fid"], [np.asarray(fids, np.int64)], [None]
    for key, vals in fields.items():
        null = np.array([v is None for v in vals], bool)
        if all(isinstance(v, str) or v is None for v in vals) and any(isinstance(v, str) for v in vals):
            arr = _obj(vals)
        elif any(isinstance(v, float) for v in vals):
            arr = np.array([np.nan if v is None else v for v in vals], np.float64)
        else:
            arr = np.array([0 if v is None else v for v in vals], np.int64)
        names.append(key)
        values.append(arr)
        masks.append(null)
    wkb = None
    if geoms is not None:
        geoms = _obj(geoms)
        if move is not None and len(geoms):
            geoms = _obj(shapely.transform(geoms, move))
        wkb = _obj(shapely.to_wkb(geoms)) if len(geoms) else _obj([])
    pyogrio.raw.write(path, wkb, values, names, field_mask=masks, layer=name, driver="GPKG",
                      geometry_type=None if geoms is None else geometry_type,
                      crs=None if geoms is None else crs)


def write_fixture(path: Path, crs: str = UTM19, move=None, skip_layer: str = "", drop_field: str = "",
                  connector_fids=(5, 6)) -> None:
    """The hand-built map (coordinates [m] before `move`, which maps (N, 2) local xy to the stored CRS).

    Lanes 1, 2 (lane group 100, eastbound x 0..50, centres y 0 and 3.5), connectors 5 (lane 1 -> 3) and
    6 (lane 2 -> 3) through intersection 300 (x 50..70), lane 3 (group 101, x 70..120, y 0).
    """
    c5, c6 = connector_fids

    def lay(name, geoms, fields, fids, gtype="Polygon"):
        if name == skip_layer:
            return
        fields = {k: v for k, v in fields.items() if k != drop_field}
        _layer(path, name, geoms, fields, fids, crs, move, gtype)

    _layer(path, "meta", None, {"key": ["version", "projectedCoordSystem"], "value": ["1", UTM19]}, [1, 2],
           None, None)
    lay("lanes_polygons", [B(0, -1.75, 50, 1.75), B(0, 1.75, 50, 5.25), B(70, -1.75, 120, 1.75)],
        {"lane_group_fid": [100, 100, 101], "lane_index": [1, 0, 0], "speed_limit_mps": [12.0, None, 15.0],
         "left_boundary_fid": [11, 12, 16], "right_boundary_fid": [10, 11, 15]}, [1, 2, 3])
    lay("lane_connectors", [L([(50, 0), (70, 0)]), L([(50, 3.5), (70, 0)])],
        {"entry_lane_fid": [1, 2], "exit_lane_fid": [3, 3], "lane_group_connector_fid": [200, 200],
         "speed_limit_mps": [10.0, 0.0], "traffic_light_stop_line_fids": ["1", ""]}, [c5, c6], "LineString")
    lay("gen_lane_connectors_scaled_width_polygons", [B(50, -1.75, 70, 1.75), B(50, 1.75, 70, 5.25)],
        {"lane_connector_fid": [str(c5), str(c6)], "left_boundary_fid": [13, 17],
         "right_boundary_fid": [14, 18]}, [1, 2])
    lay("baseline_paths", [L([(0, 0), (50, 0)]), L([(0, 3.5), (50, 3.5)]), L([(70, 0), (120, 0)]),
                           L([(50, 0), (70, 0)]), L([(50, 3.5), (70, 3.5)])],
        {"lane_fid": ["1", "2", "3", None, None], "lane_connector_fid": [None, None, None, c5, c6]},
        [1, 2, 3, 4, 5], "LineString")
    bounds = [[(0, -1.75), (50, -1.75)], [(50, 1.75), (0, 1.75)], [(50, 5.25), (0, 5.25)],
              [(50, 1.75), (70, 1.75)], [(50, -1.75), (70, -1.75)], [(70, -1.75), (120, -1.75)],
              [(70, 1.75), (120, 1.75)], [(50, 5.25), (70, 5.25)], [(50, 1.75), (70, 1.75)]]
    lay("boundaries", [L(b) for b in bounds], {}, [10, 11, 12, 13, 14, 15, 16, 17, 18], "LineString")
    lay("lane_groups_polygons", [B(0, -1.75, 50, 5.25), B(70, -1.75, 120, 1.75)], {}, [100, 101])
    lay("lane_group_connectors", [B(50, -1.75, 70, 5.25)],
        {"from_lane_group_fid": [100], "to_lane_group_fid": [101], "intersection_fid": [300]}, [200])
    lay("intersections", [B(50, -1.75, 70, 5.25)], {}, [300])
    lay("road_segments", [B(0, -1.75, 50, 5.25), shapely.MultiPolygon([B(70, -1.75, 120, 1.75),
                                                                      B(70, 10, 80, 20)])],
        {}, [400, 401], "MultiPolygon")
    lay("carpark_areas", [B(0, 10, 20, 30)], {}, [500])
    lay("generic_drivable_areas", [B(120, -1.75, 130, 1.75)], {}, [600])
    lay("stop_polygons", [B(49.75, -1.75, 50.25, 1.75), B(49.75, 1.75, 50.25, 5.25), B(500, 0, 501, 4)],
        {"stop_polygon_type_fid": [2, 2, 1]}, [1, 2, 3])
    lay("crosswalks", [B(72, -2, 75, 6)], {}, [1])
    lay("walkways", [], {}, [])


def make_root(root: Path, **kwargs) -> Path:
    (root / LOC / VERSION).mkdir(parents=True)
    write_fixture(root / LOC / VERSION / "map.gpkg", **kwargs)
    (root / MAP_VERSION_FILE).write_text(json.dumps({LOC: {"version": VERSION, "layers": {}}}))
    return root


@pytest.fixture(scope="module")
def hand_map(tmp_path_factory):
    return NuplanMaps(make_root(tmp_path_factory.mktemp("hand"))).location(LOC)


def test_hand_built_lanes(hand_map):
    m = hand_map.layers()
    assert m.lane_ids.tolist() == [1, 2, 3, 5, 6]
    assert m.lane_is_connector.tolist() == [False, False, False, True, True]
    assert m.lane_successors == ((5,), (6,), (), (3,), (3,))
    assert m.lane_roadblock_ids.tolist() == [100, 100, 101, 200, 200]
    np.testing.assert_array_equal(m.lane_speed_limits, [12.0, np.nan, 15.0, 10.0, np.nan])
    assert shapely.get_coordinates(m.lane_left_boundaries[0]).tolist() == [[0, 1.75], [50, 1.75]]  # reversed
    assert shapely.get_coordinates(m.lane_right_boundaries[0]).tolist() == [[0, -1.75], [50, -1.75]]
    assert shapely.get_coordinates(m.lane_left_boundaries[1]).tolist() == [[0, 5.25], [50, 5.25]]  # reversed
    assert shapely.get_coordinates(m.lane_right_boundaries[1]).tolist() == [[0, 1.75], [50, 1.75]]  # reversed
    assert shapely.get_coordinates(m.lane_left_boundaries[3]).tolist() == [[50, 1.75], [70, 1.75]]
    assert shapely.get_coordinates(m.lane_centerlines[4]).tolist() == [[50, 3.5], [70, 3.5]]
    np.testing.assert_allclose(shapely.area(m.lane_polygons), [175, 175, 175, 70, 70])


def test_hand_built_areas_and_stop_lines(hand_map):
    m = hand_map.layers()
    assert m.drivable_kinds.tolist() == [DrivableKind.ROADBLOCK] * 3 + [
        DrivableKind.INTERSECTION, DrivableKind.CARPARK, DrivableKind.GENERIC]
    assert m.drivable_ids.tolist() == [400, 401, 401, 300, 500, 600]
    np.testing.assert_allclose(shapely.area(m.drivable_polygons), [350, 175, 100, 140, 400, 35])
    assert m.stop_line_lane_ids.tolist() == [1, 2, -1]
    stop = shapely.get_coordinates(m.stop_lines)  # from the lane's left to its right
    np.testing.assert_allclose(stop[:4], [[50, 1.75], [50, -1.75], [50, 5.25], [50, 1.75]], atol=1e-12)
    assert shapely.length(m.stop_lines[2]) == pytest.approx(4.0)  # no lane: the long axis
    assert shapely.area(m.crosswalks).tolist() == [24.0]


def test_read_map_writes_back_equal(hand_map, tmp_path):
    folder = tmp_path / LOC / VERSION
    folder.mkdir(parents=True)
    write_map_gpkg(folder / "map.gpkg", hand_map.layers(), UTM19)
    (tmp_path / MAP_VERSION_FILE).write_text(json.dumps({LOC: {"version": VERSION}}))
    assert_same(NuplanMaps(tmp_path).location(LOC).layers(), hand_map.layers())


def test_layers_near_crops_and_caches(tmp_path, monkeypatch):
    reads = []
    real = nm.read_map_layers
    monkeypatch.setattr(nm, "read_map_layers", lambda *a: reads.append(a) or real(*a))
    near = NuplanMaps(make_root(tmp_path)).location(LOC)
    a = near.layers_near(np.array([25.0, 0.0]), 10.0)
    assert a.lane_ids.tolist() == [1, 2] and a.drivable_ids.tolist() == [400]
    b = near.layers_near(np.array([60.0, 0.0]), 5.0)
    assert b.lane_ids.tolist() == [5, 6] and b.drivable_ids.tolist() == [300] and b.stop_lines.size == 0
    c = near.layers_near(np.array([60.0, 0.0]), 11.0)
    assert c.lane_ids.tolist() == [1, 2, 3, 5, 6] and c.stop_line_lane_ids.tolist() == [1, 2]
    assert len(reads) == 1 and near.tiles.tile((0, 0)) is near.tiles.tile((0, 0))
    whole = near.layers()
    for xy, r in [((25.0, 0.0), 10.0), ((160.0, 30.0), 200.0), ((500.0, 2.0), 3.0), ((-150.0, 0.0), 160.0),
                  ((60.0, 0.0), 450.0)]:
        assert_same(near.layers_near(np.array(xy), r), whole.crop(np.array(xy), r))
    assert len(reads) == 1


def test_reprojects_from_lon_lat(tmp_path):
    to_ll = pyproj.Transformer.from_crs(UTM19, "EPSG:4326", always_xy=True)
    origin = np.array([330000.0, 4690000.0])

    def move(xy):
        return np.column_stack(to_ll.transform(xy[:, 0] + origin[0], xy[:, 1] + origin[1]))

    make_root(tmp_path, crs="EPSG:4326", move=move)
    m = NuplanMaps(tmp_path).location(LOC).layers()
    _, _, wkb, _ = pyogrio.raw.read(tmp_path / LOC / VERSION / "map.gpkg", layer="baseline_paths")
    stored = shapely.get_coordinates(shapely.from_wkb(wkb))
    expected = np.column_stack(pyproj.Transformer.from_crs("EPSG:4326", UTM19, always_xy=True)
                               .transform(stored[:, 0], stored[:, 1]))
    got = shapely.get_coordinates(m.lane_centerlines[[0, 1, 2, 3, 4]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(shapely.get_coordinates(m.lane_centerlines[0]) - origin, [[0, 0], [50, 0]],
                               atol=1e-6)
    assert m.stop_line_lane_ids.tolist() == [1, 2, -1]


def _order(m: MapLayers) -> MapLayers:
    lanes, polys = np.argsort(m.lane_ids), np.lexsort((m.drivable_ids, m.drivable_kinds))
    return MapLayers(m.lane_ids[lanes], m.lane_centerlines[lanes], m.lane_left_boundaries[lanes],
                     m.lane_right_boundaries[lanes], m.lane_polygons[lanes],
                     tuple(m.lane_successors[i] for i in lanes), m.lane_speed_limits[lanes],
                     m.lane_roadblock_ids[lanes], m.lane_is_connector[lanes], m.drivable_polygons[polys],
                     m.drivable_kinds[polys], m.drivable_ids[polys], m.stop_lines, m.stop_line_lane_ids,
                     m.crosswalks)


def assert_same(got: MapLayers, want: MapLayers) -> None:
    got, want = _order(got), _order(want)
    for name in ("lane_ids", "lane_roadblock_ids", "lane_is_connector", "drivable_kinds", "drivable_ids",
                 "stop_line_lane_ids"):
        assert getattr(got, name).tolist() == getattr(want, name).tolist(), name
    np.testing.assert_array_equal(got.lane_speed_limits, want.lane_speed_limits)
    assert got.lane_successors == want.lane_successors
    for name in ("lane_centerlines", "lane_left_boundaries", "lane_right_boundaries", "lane_polygons",
                 "drivable_polygons", "stop_lines", "crosswalks"):
        a, b = getattr(got, name), getattr(want, name)
        assert len(a) == len(b), name
        assert shapely.equals_exact(a, b, tolerance=1e-9).all(), name


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    seeds = {"sg-one-north": 1100000000, "us-ma-boston": 1100000003, "us-pa-pittsburgh-hazelwood": 1100000004}
    maps = {loc: generate_scene(seed, "test").map for loc, seed in seeds.items()}
    assert "INTERSECTION" in scenario_for_seed(seeds["us-pa-pittsburgh-hazelwood"]).name
    root = tmp_path_factory.mktemp("synthetic")
    write_maps_root(root, {loc: (m, UTM19) for loc, m in maps.items()})
    return root, maps


def test_round_trip_synthetic_maps(synthetic_root):
    root, maps = synthetic_root
    assert json.loads((root / MAP_VERSION_FILE).read_text()) == {
        loc: {"version": VERSION, "layers": {}} for loc in MAP_LOCATIONS}
    store = NuplanMaps(root)
    for loc, want in maps.items():
        got = store.location(loc)
        assert_same(got.layers(), want)
        for k in range(0, want.num_lanes, max(1, want.num_lanes // 4)):
            xy = shapely.get_coordinates(want.lane_centerlines[k].interpolate(0.5, normalized=True))[0]
            assert_same(got.layers_near(xy, 60.0), want.crop(xy, 60.0))
    empty = store.location("us-nv-las-vegas-strip").layers()
    assert empty.num_lanes == 0 and empty.drivable_polygons.size == 0
    empty_path = root / "us-nv-las-vegas-strip" / VERSION / "map.gpkg"
    assert pyogrio.raw.read(empty_path, layer="lane_connectors", return_fids=True)[1].size == 0


def test_writer_fids_equal_ids(synthetic_root):
    root, maps = synthetic_root
    path = root / "us-pa-pittsburgh-hazelwood" / VERSION / "map.gpkg"
    m = maps["us-pa-pittsburgh-hazelwood"]
    _, fids, _, _ = pyogrio.raw.read(path, layer="lanes_polygons", return_fids=True, read_geometry=False)
    assert sorted(fids.tolist()) == sorted(m.lane_ids[~m.lane_is_connector].tolist())
    meta, fids, _, vals = pyogrio.raw.read(path, layer="lane_connectors", return_fids=True,
                                           read_geometry=False)
    assert sorted(fids.tolist()) == sorted(m.lane_ids[m.lane_is_connector].tolist())
    listed = vals[list(meta["fields"]).index("traffic_light_stop_line_fids")]
    assert sum(v is not None for v in listed) >= len(m.stop_lines)
    _, fids, _, _ = pyogrio.raw.read(path, layer="intersections", return_fids=True, read_geometry=False)
    assert fids.tolist() == m.drivable_ids[m.drivable_kinds == DrivableKind.INTERSECTION].tolist()
    _, _, _, vals = pyogrio.raw.read(path, layer="meta", read_geometry=False)
    assert vals[0].tolist() == ["projectedCoordSystem"] and vals[1].tolist() == [UTM19]
    assert not list(path.parent.glob(".*tmp*"))


def _raises(fn, *parts: str) -> str:
    with pytest.raises(SourceError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


def test_bad_roots(tmp_path, monkeypatch):
    monkeypatch.delenv("NUPLAN_MAPS_ROOT", raising=False)
    _raises(lambda: maps_root(None), "NUPLAN_MAPS_ROOT")
    monkeypatch.setenv("NUPLAN_MAPS_ROOT", str(tmp_path))
    assert maps_root(None) == tmp_path
    _raises(lambda: NuplanMaps(tmp_path), MAP_VERSION_FILE, "absent")
    (tmp_path / MAP_VERSION_FILE).write_text("{not json")
    _raises(lambda: NuplanMaps(tmp_path), MAP_VERSION_FILE, "JSON")
    (tmp_path / MAP_VERSION_FILE).write_text(json.dumps({LOC: {"version": "9.99.1"}}))
    store = NuplanMaps()
    _raises(lambda: store.location(LOC), MAP_VERSION_FILE, f"{LOC}.version", "unknown version")
    _raises(lambda: store.location("sg-one-north"), MAP_VERSION_FILE, "sg-one-north", "missing")
    _raises(lambda: store.location("mars"), MAP_VERSION_FILE, "mars", "us-ma-boston")


def test_truncated_gpkg(tmp_path):
    make_root(tmp_path)
    path = tmp_path / LOC / VERSION / "map.gpkg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _raises(lambda: NuplanMaps(tmp_path).location(LOC), str(path), "truncated")
    path.write_bytes(b"not a geopackage" * 50)
    _raises(lambda: NuplanMaps(tmp_path).location(LOC), str(path))


@pytest.mark.parametrize(("kwargs", "parts"), [
    ({"skip_layer": "stop_polygons"}, ("missing layer stop_polygons",)),
    ({"skip_layer": "baseline_paths"}, ("missing layer baseline_paths",)),
    ({"drop_field": "speed_limit_mps"}, ("layer lanes_polygons", "missing field speed_limit_mps")),
    ({"drop_field": "exit_lane_fid"}, ("layer lane_connectors", "missing field exit_lane_fid")),
    ({"connector_fids": (2, 6)}, ("lanes_polygons fid 2", "lane_connectors fid 2")),
])
def test_bad_gpkg_content(tmp_path, kwargs, parts):
    make_root(tmp_path, **kwargs)
    path = tmp_path / LOC / VERSION / "map.gpkg"
    _raises(lambda: NuplanMaps(tmp_path).location(LOC).layers_near(np.zeros(2), 50.0), str(path), *parts)


def test_writer_is_atomic_and_rejects_bad_input(tmp_path, synthetic_root):
    root, maps = synthetic_root
    target = tmp_path / "map.gpkg"
    shutil.copy(root / LOC / VERSION / "map.gpkg", target)
    before = target.read_bytes()
    _raises(lambda: write_map_gpkg(target, maps[LOC], "+proj=nonsense"), str(target), "projectedCoordSystem")
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["map.gpkg"]
    _raises(lambda: write_maps_root(tmp_path, {"mars": (maps[LOC], UTM19)}), "mars")
    bad = replace(maps[LOC], lane_ids=maps[LOC].lane_ids - maps[LOC].lane_ids.min())
    _raises(lambda: write_map_gpkg(target, bad, UTM19), str(target), "lane_ids", "id 0")


def test_the_same_map_writes_the_same_bytes(tmp_path, synthetic_root):
    """GDAL stamps each layer's last_change with the current time unless told otherwise."""
    _, maps = synthetic_root
    write_map_gpkg(tmp_path / "a.gpkg", maps[LOC], UTM19)
    time.sleep(1.1)  # the stamp has a resolution of a second or better
    write_map_gpkg(tmp_path / "b.gpkg", maps[LOC], UTM19)
    assert (tmp_path / "a.gpkg").read_bytes() == (tmp_path / "b.gpkg").read_bytes()
