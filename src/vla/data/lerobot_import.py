"""Imports a LeRobotDataset v3.0 directory (ours or lerobot's, AV1 or h264 videos) into a vla .h5 file.

Each episode's task string becomes its instruction; normalization statistics are computed after the
import. What LeRobot has no field for (success, family, the embodiment) is restored when the directory
was exported by vla, and defaulted otherwise (success True, an embodiment described from the features).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from vla.data import lerobot_format as lf
from vla.data.episode import Episode
from vla.data.stats import compute_and_store
from vla.data.writer import DatasetWriter
from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField


class _VideoCursor:
    """Reads frames of one video file forward; reopens only when asked for an earlier frame."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: Any = None
        self._frames: Iterator[np.ndarray] | None = None
        self._pos = 0

    def _open(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = imageio.get_reader(self.path, format="FFMPEG")
        self._frames = iter(self._reader)
        self._pos = 0

    def read(self, start: int, n: int) -> np.ndarray:
        """uint8 [n, Hi, Wi, 3], frames start..start+n-1 of the file."""
        if self._frames is None or start < self._pos:
            self._open()
        assert self._frames is not None
        out = []
        try:
            while self._pos < start:
                next(self._frames)
                self._pos += 1
            for _ in range(n):
                out.append(next(self._frames))
                self._pos += 1
        except StopIteration:
            raise ValueError(
                f"{self.path}: video ends at frame {self._pos}, expected frames {start}..{start + n - 1}"
            ) from None
        return np.stack(out)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def _load_json(path: Path) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (not a LeRobotDataset v3.0 directory?)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON: {e}") from e


def _tasks(root: Path) -> list[str]:
    table = pq.read_table(root / lf.TASKS_PATH).to_pydict()
    names = table.get("task") or table.get("__index_level_0__")
    if names is None:
        raise ValueError(f"{root / lf.TASKS_PATH}: no task strings (expected a 'task' column or index)")
    by_index = dict(zip(table["task_index"], names, strict=True))
    return [by_index[i] for i in range(len(by_index))]


def _episodes(root: Path) -> list[dict[str, Any]]:
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise FileNotFoundError(f"{root}/meta/episodes: no episode parquet files")
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    return sorted(rows, key=lambda r: r["episode_index"])


def describe_embodiment(info: dict[str, Any], cameras: list[str], hw: tuple[int, int]) -> Embodiment:
    """An embodiment for a foreign dataset, built from its features (limits unknown: left wide open)."""
    feats = info["features"]
    s_dim, a_dim = int(feats[lf.STATE_KEY]["shape"][0]), int(feats[lf.ACTION_KEY]["shape"][0])
    wide = 1e6  # no limits are recorded in a LeRobot dataset; the safety filter needs real ones
    return Embodiment(
        name=str(info.get("robot_type") or "lerobot_import"),
        action_spaces=(
            ActionSpace(
                "action",
                (ActionGroup("action", a_dim, (-wide,) * a_dim, (wide,) * a_dim, "robot units"),),
            ),
        ),
        state_fields=(StateField("state", s_dim, "robot units"),),
        cameras=tuple(cameras),
        image_size=hw,
        control_hz=float(info["fps"]),
        joint_low=(),
        joint_high=(),
        max_joint_velocity=(),
        workspace_low=(-wide, -wide, -wide),
        workspace_high=(wide, wide, wide),
    )


def import_lerobot(root: str | Path, out_path: str | Path, *, compression: str = "gzip") -> Path:
    """Converts the LeRobotDataset v3.0 at `root` into the vla dataset `out_path` (which must not exist).

    Returns:
        `out_path`.
    """
    root, out_path = Path(root), Path(out_path)
    if out_path.exists():
        raise FileExistsError(f"{out_path}: already exists; choose another --out or delete it")
    info = _load_json(root / lf.INFO_PATH)
    version = info.get("codebase_version")
    if version != lf.CODEBASE_VERSION:
        raise ValueError(
            f"{root / lf.INFO_PATH}: codebase_version is {version!r}, expected {lf.CODEBASE_VERSION!r} "
            "(convert older datasets with lerobot's v30 conversion script first)"
        )
    feats = info.get("features", {})
    for key in (lf.STATE_KEY, lf.ACTION_KEY):
        if key not in feats:
            raise ValueError(f"{root / lf.INFO_PATH}: features lack '{key}' (have {sorted(feats)})")
    vla_info = info.get(lf.VLA_INFO_KEY) or {}
    cams = lf.camera_features(feats, vla_info)
    if not cams:
        raise ValueError(
            f"{root / lf.INFO_PATH}: no camera features ({lf.IMAGE_PREFIX}<camera> or {lf.SINGLE_IMAGE_KEY})"
        )
    shapes = {tuple(v["shape"]) for _, v in cams.values()}
    if len(shapes) != 1:
        raise ValueError(f"{root}: cameras have different image shapes {sorted(shapes)}; vla needs one size")
    hi, wi, _ = next(iter(shapes))
    fps = float(info["fps"])
    tasks = _tasks(root)
    emb_dict = vla_info.get("embodiment")
    cam_names = sorted(cams)
    embodiment = (
        Embodiment.from_dict(emb_dict) if emb_dict else describe_embodiment(info, cam_names, (hi, wi))
    )
    writer = DatasetWriter(
        out_path,
        embodiment=embodiment,
        suite=str(vla_info.get("suite", "")),
        env_args=dict(vla_info.get("env_args") or {"lerobot_root": str(root)}),
        compression=compression,
    )
    data_tables: dict[Path, dict[str, Any]] = {}
    cursors: dict[Path, _VideoCursor] = {}
    try:
        for ep in _episodes(root):
            episode = _read_episode(root, info, ep, tasks, cams, fps, data_tables, cursors)
            writer.append(episode)
    finally:
        for c in cursors.values():
            c.close()
    compute_and_store(out_path)
    return out_path


def _read_episode(
    root: Path,
    info: dict[str, Any],
    ep: dict[str, Any],
    tasks: list[str],
    cams: dict[str, tuple[str, dict[str, Any]]],
    fps: float,
    data_tables: dict[Path, dict[str, Any]],
    cursors: dict[Path, _VideoCursor],
) -> Episode:
    e = int(ep["episode_index"])
    dpath = root / info["data_path"].format(
        chunk_index=int(ep["data/chunk_index"]), file_index=int(ep["data/file_index"])
    )
    if dpath not in data_tables:
        if not dpath.exists():
            raise FileNotFoundError(f"{dpath}: data file of episode {e} is missing")
        data_tables.clear()  # keep one data file in memory at a time
        table = pq.read_table(dpath)
        data_tables[dpath] = {
            "episode_index": table["episode_index"].to_numpy(),
            "frame_index": table["frame_index"].to_numpy(),
            "task_index": table["task_index"].to_numpy(),
            "table": table,
        }
    d = data_tables[dpath]
    rows = np.flatnonzero(d["episode_index"] == e)
    rows = rows[np.argsort(d["frame_index"][rows])]
    n = int(ep["length"])
    if len(rows) != n:
        raise ValueError(f"{dpath}: episode {e} has {len(rows)} frames, meta/episodes says {n}")
    table = d["table"]

    def column(key: str, dim: int) -> np.ndarray:
        flat = table[key].take(rows).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        if flat.size != n * dim:
            raise ValueError(
                f"{dpath}: episode {e} column '{key}' has {flat.size} values, expected {n}x{dim}"
            )
        arr = flat.astype(np.float32).reshape(n, dim)  # (n, dim)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{dpath}: episode {e} column '{key}' holds non-finite values")
        return arr

    state = column(lf.STATE_KEY, int(info["features"][lf.STATE_KEY]["shape"][0]))
    actions = column(lf.ACTION_KEY, int(info["features"][lf.ACTION_KEY]["shape"][0]))
    images = {}
    for cam, (key, feat) in cams.items():
        if feat["dtype"] == "video":
            vpath = root / info["video_path"].format(
                video_key=key,
                chunk_index=int(ep[f"videos/{key}/chunk_index"]),
                file_index=int(ep[f"videos/{key}/file_index"]),
            )
            if not vpath.exists():
                raise FileNotFoundError(f"{vpath}: video of episode {e} is missing")
            cursor = cursors.setdefault(vpath, _VideoCursor(vpath))
            images[cam] = cursor.read(round(float(ep[f"videos/{key}/from_timestamp"]) * fps), n)
        elif feat["dtype"] == "image":
            cells = table[key].take(rows).to_pylist()
            images[cam] = np.stack(
                [np.asarray(Image.open(io.BytesIO(c["bytes"])).convert("RGB")) for c in cells]
            )
        else:
            raise ValueError(
                f"{root}: feature '{key}' has dtype {feat['dtype']!r}, expected 'video' or 'image'"
            )
    ep_tasks = ep.get("tasks") or [tasks[int(d["task_index"][rows[0]])]]
    meta_json = ep.get(lf.VLA_META_COLUMN)
    meta = json.loads(meta_json) if meta_json else {"lerobot_episode_index": e}
    success = ep.get(lf.VLA_SUCCESS_COLUMN)
    return Episode(
        images=images,
        state=state,
        actions=actions,
        timestamps=d["frame_index"][rows].astype(np.float64) / fps,
        instruction=str(ep_tasks[0]),
        success=True if success is None else bool(success),
        meta=meta,
    )
