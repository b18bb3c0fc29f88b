"""Appends episodes to a vla HDF5 dataset, each append atomic (see `vla.data.journal`).

The file is closed between appends ("close-after-each-episode", not SWMR: SWMR cannot create the new
groups each episode needs). Readers in other processes may open the file at any time; they see every
episode committed before they opened it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vla.data.episode import Episode
from vla.data.journal import JournaledFile, file_lock, recover
from vla.data.layout import COMPRESSIONS, FORMAT, STATE_KEY, demo_name, image_key
from vla.features import Feature, features_to_json
from vla.spaces import Embodiment
from vla.types import DatasetStats


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"value of type {type(value).__name__} is not JSON-serializable")


def to_json(value: Any) -> str:
    return json.dumps(value, default=_json_default, sort_keys=True)


class DatasetWriter:
    """Creates or appends to the dataset at `path`; the only process that writes to it.

    Args:
        path: the .h5 file (created with its parent folders if missing).
        embodiment: the robot the episodes come from; stored once, checked on every later open.
        suite: the suite name, "" if none.
        features: the extra fields the suite declares (`vla.features`); episode features travel in
            each episode's meta under their names.
        env_args: how the episodes' envs were made (image size, control mode, ...), JSON-serializable.
        compression: image compression: "gzip" (level 1, default: read as fast as lzf here, 1/3
            smaller, and readable by any HDF5 tool, while lzf needs h5py's filter), "lzf" or "none".
    """

    def __init__(
        self,
        path: str | Path,
        *,
        embodiment: Embodiment | None = None,
        suite: str = "",
        features: tuple[Feature, ...] = (),
        env_args: dict[str, Any] | None = None,
        compression: str = "gzip",
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got '{compression}'")
        self.path = Path(path)
        self.compression = compression
        if self.path.exists() and self.path.stat().st_size > 0:
            with file_lock(self.path, exclusive=True):
                recover(self.path)
                self._check_existing(embodiment)
        else:
            self._create(embodiment, suite, env_args or {}, features)

    def _create(
        self, embodiment: Embodiment | None, suite: str, env_args: dict[str, Any], features: tuple[Feature, ...]
    ) -> None:
        # Built under a temporary name and renamed: a kill leaves either no file or a valid empty one.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with h5py.File(tmp, "w") as f:
            f.attrs["vla_format"] = FORMAT
            f.attrs["embodiment"] = to_json(embodiment.to_dict()) if embodiment is not None else ""
            f.attrs["suite"] = suite
            f.attrs["features"] = to_json(features_to_json(features))
            f.attrs["env_args"] = to_json(env_args)
            data = f.create_group("data")
            data.attrs["episodes"] = "[]"
            data.attrs["total"] = 0
            data.attrs["env_args"] = to_json({"env_name": suite, "type": "vla", "env_kwargs": env_args})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def _check_existing(self, embodiment: Embodiment | None) -> None:
        try:
            f = h5py.File(self.path, "r", locking=False)
        except OSError as e:
            raise ValueError(f"{self.path}: cannot append, not a readable HDF5 file ({e})") from e
        with f:
            if f.attrs.get("vla_format") != FORMAT:
                raise ValueError(
                    f"{self.path}: cannot append, attribute vla_format is "
                    f"{f.attrs.get('vla_format')!r}, expected {FORMAT!r}"
                )
            stored = f.attrs.get("embodiment", "")
            if embodiment is not None and stored:
                problems = Embodiment.from_dict(json.loads(stored)).compatible_with(embodiment)
                if problems:
                    raise ValueError(f"{self.path}: cannot append episodes of another robot: {problems}")

    def _modify(self, fn: Any) -> Any:
        """Runs `fn(h5file)` as one atomic, journaled change of the file."""
        with file_lock(self.path, exclusive=True):
            recover(self.path)
            jf = JournaledFile(self.path)
            try:
                with h5py.File(jf, "r+") as f:
                    result = fn(f)
            except BaseException:
                jf.abort()
                raise
            jf.commit()
            return result

    def append(self, episode: Episode) -> int:
        """Writes `episode` as the next demo group and commits it. Returns its index in the dataset."""
        episode.validate(where=f"{self.path}: new episode")
        return int(self._modify(lambda f: self._write_episode(f, episode)))

    def _write_episode(self, f: h5py.File, ep: Episode) -> int:
        shapes = {
            "cameras": sorted(ep.images),
            "image_size": {cam: list(img.shape[1:3]) for cam, img in ep.images.items()},
            "state_dim": int(ep.state.shape[1]),
            "action_dim": int(ep.actions.shape[1]),
        }
        if "shapes" in f.attrs:
            expected = json.loads(f.attrs["shapes"])
            for key in ("cameras", "image_size", "state_dim", "action_dim"):
                if expected[key] != shapes[key]:
                    raise ValueError(
                        f"{self.path}: new episode's {key} is {shapes[key]}, expected {expected[key]} "
                        "(as the episodes already in the file)"
                    )
        else:
            self._check_embodiment(f, shapes)
            f.attrs["shapes"] = to_json(shapes)
        data = f["data"]
        names: list[str] = json.loads(data.attrs["episodes"])
        index = len(names)
        name = demo_name(index)
        if name in data:  # left by a writer that predates the journal or by another tool
            del data[name]
        g = data.create_group(name)
        n = len(ep)
        obs = g.create_group("obs")
        comp: dict[str, Any] = {}
        if self.compression == "lzf":
            comp = {"compression": "lzf"}
        elif self.compression == "gzip":
            comp = {"compression": "gzip", "compression_opts": 1}
        for cam, frames in ep.images.items():
            # One chunk per frame: a window read decompresses exactly the frames it needs.
            obs.create_dataset(image_key(cam), data=frames, chunks=(1, *frames.shape[1:]), **comp)
        obs.create_dataset(STATE_KEY, data=ep.state)
        g.create_dataset("actions", data=ep.actions)
        g.create_dataset("timestamps", data=ep.timestamps)
        rewards = np.zeros(n, dtype=np.float32)
        dones = np.zeros(n, dtype=np.uint8)
        dones[-1] = 1
        rewards[-1] = float(ep.success)
        g.create_dataset("rewards", data=rewards)
        g.create_dataset("dones", data=dones)
        g.attrs["num_samples"] = n
        g.attrs["instruction"] = ep.instruction
        g.attrs["success"] = bool(ep.success)
        g.attrs["meta"] = to_json(ep.meta)
        for key, value in ep.meta.items():
            if isinstance(value, str | int | float | bool | np.generic) and key not in g.attrs:
                g.attrs[key] = value
        # The index is updated last: a demo group missing from it is never read.
        data.attrs["total"] = int(data.attrs["total"]) + n
        data.attrs["episodes"] = to_json([*names, name])
        return index

    def _check_embodiment(self, f: h5py.File, shapes: dict[str, Any]) -> None:
        stored = f.attrs.get("embodiment", "")
        if not stored:
            return
        emb = Embodiment.from_dict(json.loads(stored))
        if shapes["state_dim"] != emb.state_dim:
            raise ValueError(
                f"{self.path}: new episode's state has {shapes['state_dim']} dims, "
                f"embodiment '{emb.name}' declares {emb.state_dim}"
            )
        if shapes["action_dim"] != emb.action_space().dim:
            raise ValueError(
                f"{self.path}: new episode's actions have {shapes['action_dim']} dims, "
                f"embodiment '{emb.name}' declares {emb.action_space().dim}"
            )

    def set_stats(self, stats: DatasetStats) -> None:
        """Stores normalization statistics in the file (root attribute `stats`, JSON)."""
        self._modify(lambda f: f.attrs.__setitem__("stats", to_json(stats.to_dict())))

    def set_attr(self, key: str, value: Any) -> None:
        """Stores a JSON-serializable file-level attribute (e.g. provenance of an import)."""
        self._modify(lambda f: f.attrs.__setitem__(key, to_json(value)))
