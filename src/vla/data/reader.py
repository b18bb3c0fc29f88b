"""Reads a vla HDF5 dataset (see `vla.data.layout`), validating it with errors that name file and field.

The reader sees the episodes committed when it was opened; a writer may keep appending meanwhile
(open a new reader to see them). Reads hold a shared lock so they never overlap an append.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vla.data.episode import Episode
from vla.data.journal import file_lock, journal_path, recover
from vla.data.layout import FORMAT, IMAGE_SUFFIX, STATE_KEY, demo_number
from vla.features import Feature, features_from_json
from vla.spaces import Embodiment
from vla.types import DatasetStats


@dataclass(frozen=True)
class EpisodeInfo:
    """What is known about an episode without reading its arrays."""

    name: str
    length: int
    instruction: str
    success: bool
    meta: dict[str, Any]

    @property
    def family(self) -> str:
        return str(self.meta.get("family", ""))


@contextlib.contextmanager
def _reading(where: str) -> Iterator[None]:
    """Turns HDF5's low-level errors (damaged chunks, bad metadata) into errors naming file and field."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        raise ValueError(f"{where}: unreadable ({e}); the file is damaged or truncated") from e


class EpisodeDataset:
    """A vla dataset on disk: `len(ds)` episodes, `ds.episode(i)` reads one.

    Args:
        path: the .h5 file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such dataset file")
        if journal_path(self.path).exists():
            # A writer is appending, or died while appending: wait for it / roll its change back.
            with file_lock(self.path, exclusive=True):
                recover(self.path)
        with file_lock(self.path, exclusive=False):
            try:
                self._file = h5py.File(self.path, "r", locking=False)
            except OSError as e:
                raise ValueError(f"{self.path}: not a readable HDF5 file (truncated or corrupt?): {e}") from e
            try:
                with _reading(str(self.path)):
                    self._load_index()
            except Exception:
                self._file.close()
                raise

    # --- opening ---------------------------------------------------------------------------------------
    def _attr_json(self, obj: Any, key: str, where: str, default: Any) -> Any:
        raw = obj.attrs.get(key)
        if raw is None or raw == "":
            return default
        try:
            return json.loads(raw)
        except (TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"{self.path}: attribute {where}{key} is not valid JSON: {e}") from e

    def _load_index(self) -> None:
        f = self._file
        if "data" not in f:
            raise ValueError(f"{self.path}: missing group 'data' (not a vla/robomimic dataset)")
        data = f["data"]
        fmt = f.attrs.get("vla_format")
        if fmt is not None and fmt != FORMAT:
            raise ValueError(f"{self.path}: attribute vla_format is {fmt!r}, expected {FORMAT!r}")
        if "episodes" in data.attrs:
            names = self._attr_json(data, "episodes", "data.", [])
        else:  # a robomimic file written by another tool
            names = sorted((k for k in data if k.startswith("demo_")), key=demo_number)
        self._names: list[str] = list(names)
        emb = self._attr_json(f, "embodiment", "", None)
        self.embodiment: Embodiment | None = Embodiment.from_dict(emb) if emb else None
        self.suite: str = str(f.attrs.get("suite", ""))
        # Declared extras (vla.features); episode features live in each episode's meta by name.
        self.features: tuple[Feature, ...] = features_from_json(
            self._attr_json(f, "features", "", None), where=f"{self.path}: features"
        )
        self.env_args: dict[str, Any] = self._attr_json(f, "env_args", "", {})
        stats = self._attr_json(f, "stats", "", None)
        self.stats: DatasetStats | None = (
            DatasetStats.from_dict(stats, where=f"{self.path}: stats") if stats else None
        )
        self.cameras: tuple[str, ...] = ()
        self.image_size: tuple[int, int] = (0, 0)
        self.state_dim = 0
        self.action_dim = 0
        self._infos: list[EpisodeInfo] = []
        self._groups: list[h5py.Group] = []
        for name in self._names:
            self._add_episode(name)

    def _add_episode(self, name: str) -> None:
        where = f"{self.path}: {name}"
        data = self._file["data"]
        if name not in data:
            raise ValueError(f"{where}: listed in data.attrs['episodes'] but the group is missing")
        g = data[name]
        for key in ("obs", "actions"):
            if key not in g:
                raise ValueError(f"{where}: missing '{key}'")
        obs = g["obs"]
        if STATE_KEY not in obs:
            raise ValueError(f"{where}: missing 'obs/{STATE_KEY}'")
        cams = tuple(sorted(k[: -len(IMAGE_SUFFIX)] for k in obs if k.endswith(IMAGE_SUFFIX)))
        if not cams:
            raise ValueError(f"{where}: no camera images (expected obs/<camera>{IMAGE_SUFFIX})")
        actions, state = g["actions"], obs[STATE_KEY]
        n = int(g.attrs.get("num_samples", actions.shape[0]))
        if not self._infos:
            self.cameras = cams
            self.state_dim = int(state.shape[-1]) if state.ndim == 2 else -1
            self.action_dim = int(actions.shape[-1]) if actions.ndim == 2 else -1
            first = obs[f"{cams[0]}{IMAGE_SUFFIX}"]
            self.image_size = (int(first.shape[1]), int(first.shape[2])) if first.ndim == 4 else (0, 0)
        elif cams != self.cameras:
            raise ValueError(f"{where}: cameras {list(cams)}, expected {list(self.cameras)}")
        expect: list[tuple[str, Any, tuple[int, ...], Any]] = [
            (f"obs/{STATE_KEY}", state, (n, self.state_dim), np.float32),
            ("actions", actions, (n, self.action_dim), np.float32),
        ]
        for cam in cams:
            expect.append(
                (f"obs/{cam}{IMAGE_SUFFIX}", obs[f"{cam}{IMAGE_SUFFIX}"], (n, *self.image_size, 3), np.uint8)
            )
        if "timestamps" in g:
            expect.append(("timestamps", g["timestamps"], (n,), np.float64))
        for key, ds, shape, dtype in expect:
            if ds.shape != shape:
                raise ValueError(f"{where}/{key} has shape {ds.shape}, expected {shape}")
            if ds.dtype != np.dtype(dtype):
                raise ValueError(f"{where}/{key} has dtype {ds.dtype}, expected {np.dtype(dtype)}")
        meta = self._attr_json(g, "meta", f"{name}.", {})
        for key, value in g.attrs.items():  # robomimic files keep extras as plain attributes
            if key not in ("meta", "num_samples", "instruction", "success") and key not in meta:
                meta[key] = value.item() if isinstance(value, np.generic) else value
        instruction = g.attrs.get("instruction", meta.get("lang", ""))
        self._infos.append(
            EpisodeInfo(
                name=name,
                length=n,
                instruction=str(instruction),
                success=bool(g.attrs.get("success", True)),
                meta=meta,
            )
        )
        self._groups.append(g)

    # --- queries ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._infos)

    def __enter__(self) -> EpisodeDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _check_index(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.path}: episode {i} out of range (dataset has {len(self)} episodes)")
        return i % len(self)

    def info(self, i: int) -> EpisodeInfo:
        """Returns episode `i`'s length, instruction, success and extras without reading arrays."""
        return self._infos[self._check_index(i)]

    @property
    def infos(self) -> list[EpisodeInfo]:
        return list(self._infos)

    @property
    def lengths(self) -> np.ndarray:
        """int64 [num_episodes], steps per episode."""
        return np.asarray([e.length for e in self._infos], dtype=np.int64)

    @property
    def num_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def instructions(self) -> list[str]:
        """One instruction per episode."""
        return [e.instruction for e in self._infos]

    @property
    def families(self) -> list[str]:
        """One task-family name per episode ("" when unknown)."""
        return [e.family for e in self._infos]

    def episode(self, i: int, *, images: bool = True) -> Episode:
        """Reads episode `i` (images omitted, i.e. empty [N, 0, 0, 3] arrays, when `images` is False)."""
        i = self._check_index(i)
        info, g = self._infos[i], self._groups[i]
        n = info.length
        with file_lock(self.path, exclusive=False), _reading(f"{self.path}: {info.name}"):
            frames = {
                cam: g["obs"][f"{cam}{IMAGE_SUFFIX}"][()]
                if images
                else np.zeros((n, 0, 0, 3), dtype=np.uint8)
                for cam in self.cameras
            }
            state = g["obs"][STATE_KEY][()]
            actions = g["actions"][()]
            ts = g["timestamps"][()] if "timestamps" in g else self._default_timestamps(n)
        return Episode(
            images=frames,
            state=state,
            actions=actions,
            timestamps=ts,
            instruction=info.instruction,
            success=info.success,
            meta=dict(info.meta),
        )

    def _default_timestamps(self, n: int) -> np.ndarray:
        hz = self.embodiment.control_hz if self.embodiment is not None else 10.0
        return np.arange(n, dtype=np.float64) / hz

    def read_low_dim(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (state float32 [N, S], actions float32 [N, A]) of episode `i`."""
        i = self._check_index(i)
        g = self._groups[i]
        with file_lock(self.path, exclusive=False), _reading(f"{self.path}: {self._infos[i].name}"):
            return g["obs"][STATE_KEY][()], g["actions"][()]

    def read_frames(self, i: int, camera: str, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Returns uint8 [n, Hi, Wi, 3] frames of `camera` in episode `i` (all, a slice or sorted indices)."""
        if camera not in self.cameras:
            raise KeyError(f"{self.path}: no camera '{camera}'; cameras: {list(self.cameras)}")
        i = self._check_index(i)
        ds = self._groups[i]["obs"][f"{camera}{IMAGE_SUFFIX}"]
        where = f"{self.path}: {self._infos[i].name}/obs/{camera}{IMAGE_SUFFIX}"
        with file_lock(self.path, exclusive=False), _reading(where):
            return ds[()] if index is None else ds[index]

    def require_stats(self) -> DatasetStats:
        """Returns the stored normalization statistics, or raises telling how to compute them."""
        if self.stats is None:
            raise ValueError(
                f"{self.path}: no normalization statistics stored; run `vla data stats {self.path}` "
                "or vla.data.stats.compute_and_store(path)"
            )
        return self.stats
