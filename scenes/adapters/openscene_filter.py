"""NAVSIM v1.1 scene filters (the `scene_filter` YAML) and the windowing of a log into scenes.

`windows` reproduces `navsim.common.dataloader.filter_scenes` for one log: windows of
`num_frames = num_history_frames + num_future_frames` consecutive frames start every `frame_interval`
frames from frame 0; a window is dropped when it is shorter than `num_frames`, when (with `has_route`) its
frame `num_history_frames - 1` has no roadblock ids, or when a token list is given and that frame's token is
not in it. Unlike navsim it returns every window with its drop reason, for reporting. `max_scenes` counts
across logs in navsim, so the caller stops after that many kept scenes.

As in navsim's `SceneFilter.__post_init__`, a missing or null `frame_interval` means `num_frames`
(non-overlapping windows); navtrain and navtest set it to 1.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scenes.adapters.errors import SourceError
from scenes.adapters.openscene_frames import LogFrame

_HYDRA_KEYS = frozenset({"_target_", "_convert_", "_recursive_", "_partial_"})
_SHOWN_MISSING = 5  # log names listed in a missing-logs message


class DropReason(enum.Enum):
    """Why a window of a log yields no scene."""

    TOO_SHORT = "too_short"  # fewer frames than num_frames left in the log
    NO_ROUTE = "no_route"  # has_route and the current frame has no roadblock ids
    NOT_IN_FILTER = "not_in_filter"  # the filter lists tokens and the current token is not among them
    ROUTE_NOT_ON_MAP = "route_not_on_map"  # no route lane of the map near the ego (build_scene)
    TIME_GAP = "time_gap"  # frames of the window are not 0.5 s apart (build_scene)


@dataclass(frozen=True)
class SceneFilter:
    """NAVSIM v1.1 `SceneFilter`.

    Attributes:
        num_history_frames: frames up to and including the current one (>= 1).
        num_future_frames: frames after the current one (>= 0).
        frame_interval: frames between window starts (>= 1); None: num_frames, as navsim.
        has_route: drop windows whose current frame has no route.
        max_scenes: stop after this many kept scenes over all logs; None: no limit.
        log_names: only these logs; None: every log.
        tokens: only scenes whose current-frame token is listed; None: every token.
    """

    num_history_frames: int = 4
    num_future_frames: int = 10
    frame_interval: int | None = None
    has_route: bool = True
    max_scenes: int | None = None
    log_names: tuple[str, ...] | None = None
    tokens: frozenset[str] | None = None

    @property
    def num_frames(self) -> int:
        """Frames per window."""
        return self.num_history_frames + self.num_future_frames

    @property
    def step(self) -> int:
        """Frames between window starts: `frame_interval`, or `num_frames` when it is None."""
        return self.num_frames if self.frame_interval is None else self.frame_interval


@dataclass(frozen=True)
class Window:
    """One window of a log.

    Attributes:
        start: index of its first frame in the log.
        current: index of its current frame (start + num_history_frames - 1).
        token: token of the current frame; "" when the log ends before it.
        dropped: why it yields no scene; None when kept.
    """

    start: int
    current: int
    token: str
    dropped: DropReason | None


def windows(frames: Sequence[LogFrame], scene_filter: SceneFilter) -> list[Window]:
    """Every window of one log's `frames` as navsim v1.1 `filter_scenes` cuts them, with its drop reason."""
    out = []
    for start in range(0, len(frames), scene_filter.step):
        current = start + scene_filter.num_history_frames - 1
        token = frames[current].token if current < len(frames) else ""
        reason: DropReason | None = None
        if len(frames) - start < scene_filter.num_frames:
            reason = DropReason.TOO_SHORT
        elif scene_filter.has_route and not frames[current].roadblock_ids:
            reason = DropReason.NO_ROUTE
        elif scene_filter.tokens is not None and token not in scene_filter.tokens:
            reason = DropReason.NOT_IN_FILTER
        out.append(Window(start, current, token, reason))
    return out


def read_scene_filter(path: str | Path) -> SceneFilter:
    """The SceneFilter of NAVSIM scene-filter YAML `path` (hydra keys such as `_target_` are ignored).

    Raises:
        SourceError: naming the file and the key, for unreadable YAML, unknown keys or bad values.
    """
    import yaml

    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise SourceError(f"{source}: cannot be read ({error.strerror or error})") from error
    except yaml.YAMLError as error:
        raise SourceError(f"{source}: is not valid YAML ({' '.join(str(error).split())})") from error
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SourceError(f"{source}: expected a mapping of scene-filter fields, got {type(raw).__name__}")
    known = {"num_history_frames", "num_future_frames", "frame_interval", "has_route", "max_scenes",
             "log_names", "tokens"}
    unknown = sorted(str(k) for k in raw if k not in known and k not in _HYDRA_KEYS)
    if unknown:
        raise SourceError(f"{source}: unknown scene-filter key {unknown[0]!r} (known: {', '.join(sorted(known))})")

    def integer(key: str, default: int | None, minimum: int) -> int | None:
        value = raw.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SourceError(f"{source}: {key} must be an integer >= {minimum}, got {value!r}")
        return value

    def names(key: str) -> tuple[str, ...] | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SourceError(f"{source}: {key} must be a list of str or null")
        return tuple(value)

    history = integer("num_history_frames", 4, 1)
    future = integer("num_future_frames", 10, 0)
    assert history is not None and future is not None
    has_route = raw.get("has_route", True)
    if not isinstance(has_route, bool):
        raise SourceError(f"{source}: has_route must be true or false, got {has_route!r}")
    tokens = names("tokens")
    return SceneFilter(
        num_history_frames=history,
        num_future_frames=future,
        frame_interval=integer("frame_interval", None, 1),
        has_route=has_route,
        max_scenes=integer("max_scenes", None, 1),
        log_names=names("log_names"),
        tokens=None if tokens is None else frozenset(tokens),
    )


def missing_logs(scene_filter: SceneFilter, available_log_names: Iterable[str], source: str = "scene filter"
                 ) -> None:
    """Check that every log the filter names is available (names without ".pkl").

    Raises:
        SourceError: "SOURCE: names N log(s) absent from the logs folder: a, b, ..." listing the first few.
    """
    if scene_filter.log_names is None:
        return
    available = set(available_log_names)
    absent = [name for name in scene_filter.log_names if name not in available]
    if absent:
        shown = ", ".join(absent[:_SHOWN_MISSING]) + (", ..." if len(absent) > _SHOWN_MISSING else "")
        raise SourceError(f"{source}: names {len(absent)} log(s) absent from the logs folder: {shown}")
