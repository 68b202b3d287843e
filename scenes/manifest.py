"""Benchmark manifests: the content digest of every scene (or world and episode) of a fixed benchmark.

A manifest is a small JSON file shipped in the repository:

    {"benchmark": "navtest-synth", "version": "3", "generator_version": "synthetic-drive/3", "count": 500,
     "set_hash": "<sha256 of the ordered digests>", "items": [["test-1100000000", "<sha256>"], ...]}

Building a benchmark checks every item against it (`BenchmarkManifest.check`), so a machine or a checkout
that generates different bits stops at the first differing item instead of silently scoring another
benchmark. Evaluations record the set hash (`BenchmarkIdentity`), and tables refuse to mix set hashes.
Digests are `scenes.digest.content_digest`: every bit of every field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from scenes.digest import combined_digest
from scenes.errors import DiffplanError

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"


class ManifestError(DiffplanError, ValueError):
    """A benchmark item or a manifest file does not match (one line, naming the item or the file)."""


@dataclass(frozen=True)
class BenchmarkIdentity:
    """What an evaluation ran on, as recorded in its summary.json.

    Attributes:
        name: benchmark name, or None for a dataset that is no benchmark.
        version: benchmark version ("" when not a benchmark).
        set_hash: sha256 of the whole benchmark's ordered item digests ("" when not a benchmark).
        evaluated_hash: sha256 of the ordered digests of the items this run evaluated.
        evaluated: number of items evaluated.
        total: number of items in the benchmark (or the dataset).
        spread: the evaluated items are spread evenly over the set (else they are its first ones).
    """

    name: str | None
    version: str
    set_hash: str
    evaluated_hash: str
    evaluated: int
    total: int
    spread: bool = False

    @property
    def subset(self) -> str:
        """e.g. "navtest-synth v3, first 100 of 500", "pointnav-synth-wheeled v2, 10 spread over 200"."""
        name = f"{self.name} v{self.version}" if self.name else "a dataset that is no benchmark"
        if self.evaluated == self.total:
            return f"{name}, all {self.total}"
        how = "spread over" if self.spread else "of"
        return f"{name}, {'' if self.spread else 'first '}{self.evaluated} {how} {self.total}"

    def as_json(self) -> dict[str, object]:
        """The identity as summary.json records it."""
        return {"name": self.name, "version": self.version, "set_hash": self.set_hash,
                "evaluated_hash": self.evaluated_hash, "evaluated": self.evaluated, "total": self.total,
                "spread": self.spread, "subset": self.subset}

    @classmethod
    def from_json(cls, body: object) -> BenchmarkIdentity | None:
        """The identity a summary.json recorded, or None when it has none (runs made before it existed)."""
        if not isinstance(body, dict):
            return None
        try:
            return cls(body["name"], str(body["version"]), str(body["set_hash"]), str(body["evaluated_hash"]),
                       int(body["evaluated"]), int(body["total"]), bool(body.get("spread", False)))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class BenchmarkManifest:
    """The ordered (item id, digest) pairs of a benchmark.

    Attributes:
        name: benchmark name, e.g. "navtest-synth".
        version: benchmark version; bumped whenever an item changes.
        generator_version: the generator that makes the items.
        item_ids: (N,) item ids in build order.
        digests: (N,) hex sha256 content digests.
    """

    name: str
    version: str
    generator_version: str
    item_ids: tuple[str, ...]
    digests: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def set_hash(self) -> str:
        """Combined digest of every item's digest, in order."""
        return combined_digest(self.digests)

    def identity(self, evaluated_digests: list[str]) -> BenchmarkIdentity:
        """The identity of a run over `evaluated_digests` (already checked to be a prefix of this benchmark)."""
        return BenchmarkIdentity(self.name, self.version, self.set_hash, combined_digest(evaluated_digests),
                                 len(evaluated_digests), len(self))

    def check(self, index: int, item_id: str, digest: str) -> None:
        """Raise ManifestError unless item `index` is `item_id` with content `digest`."""
        label = f"{self.name} v{self.version}"
        if not 0 <= index < len(self):
            raise ManifestError(f"{label}: item {index} ({item_id}) is beyond the manifest's {len(self)} items")
        if self.item_ids[index] != item_id:
            raise ManifestError(f"{label}: item {index} is {item_id}, but the manifest lists "
                                f"{self.item_ids[index]}")
        if self.digests[index] != digest:
            raise ManifestError(
                f"{label}: {item_id} (item {index}) differs from the manifest (content sha256 {digest[:12]}..., "
                f"expected {self.digests[index][:12]}...): this machine or checkout builds another benchmark")

    def check_all(self, item_ids: list[str], digests: list[str]) -> None:
        """Check items 0..K-1 in order; the error names the first that differs."""
        for index, (item_id, digest) in enumerate(zip(item_ids, digests, strict=True)):
            self.check(index, item_id, digest)

    def to_json(self) -> str:
        """The manifest file's text (JSON, one item per line)."""
        body = {"benchmark": self.name, "version": self.version, "generator_version": self.generator_version,
                "count": len(self), "set_hash": self.set_hash,
                "items": [[i, d] for i, d in zip(self.item_ids, self.digests, strict=True)]}
        return json.dumps(body, indent=0) + "\n"

    @classmethod
    def read(cls, path: Path) -> BenchmarkManifest:
        """A manifest file; ManifestError naming the file when it is missing, malformed or inconsistent."""
        try:
            body = json.loads(Path(path).read_text())
            items = body["items"]
            manifest = cls(str(body["benchmark"]), str(body["version"]), str(body["generator_version"]),
                           tuple(str(i) for i, _ in items), tuple(str(d) for _, d in items))
            count, set_hash = int(body["count"]), str(body["set_hash"])
        except FileNotFoundError:
            raise ManifestError(f"{path}: benchmark manifest not found") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ManifestError(f"{path}: not a benchmark manifest ({type(error).__name__}: {error})") from None
        if count != len(manifest) or set_hash != manifest.set_hash:
            raise ManifestError(f"{path}: count or set_hash disagrees with its items (edited by hand?)")
        return manifest


def manifest_path(name: str, directory: Path = MANIFEST_DIR) -> Path:
    """The file of manifest `name` in `directory`."""
    return Path(directory) / f"{name}.json"


def load_manifest(name: str, generator_version: str, directory: Path = MANIFEST_DIR) -> BenchmarkManifest:
    """The shipped manifest of benchmark `name`, which must be for `generator_version`."""
    path = manifest_path(name, directory)
    manifest = BenchmarkManifest.read(path)
    if manifest.generator_version != generator_version:
        raise ManifestError(f"{path}: made with {manifest.generator_version}, but this checkout generates "
                            f"{generator_version} (the manifest was not regenerated)")
    return manifest
