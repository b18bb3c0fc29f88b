"""Exports a vla dataset to the LeRobotDataset v3.0 layout (see `vla.data.lerobot_format`).

Videos are h264 yuv420p written with imageio-ffmpeg (lerobot reads h264 as well as its default AV1).
Everything goes into chunk-000/file-000 of each kind: lerobot's own size limits (100 MB data, 200 MB
video per file) are far above what a CPU-collected dataset reaches, and readers follow the per-episode
file indices anyway.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla.data import lerobot_format as lf
from vla.data.reader import EpisodeDataset


@dataclass(frozen=True)
class VideoConfig:
    """h264 encoding settings.

    Attributes:
        crf: constant rate factor (0 lossless .. 51 worst); 18 keeps rendered scenes within ~1/255.
        preset: x264 speed/size trade-off.
        gop: keyframe interval in frames; small values make random access (training) fast, as lerobot's 2.
    """

    crf: int = 18
    preset: str = "veryfast"
    gop: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf}")
        if self.gop < 1:
            raise ValueError(f"gop must be >= 1, got {self.gop}")


def _names(fields: list[tuple[str, int]]) -> list[str]:
    return [name if size == 1 else f"{name}_{i}" for name, size in fields for i in range(size)]


def export_lerobot(
    source: str | Path,
    out_dir: str | Path,
    *,
    video: VideoConfig | None = None,
    overwrite: bool = False,
    robot_type: str | None = None,
) -> Path:
    """Writes the dataset at `source` as a LeRobotDataset v3.0 directory.

    Args:
        source: a vla .h5 dataset.
        out_dir: the directory to create (its name is the dataset's local repo id).
        video: h264 settings.
        overwrite: replace `out_dir` if it exists.
        robot_type: LeRobot's robot_type field (default: the embodiment's name).

    Returns:
        The output directory.
    """
    video = video or VideoConfig()
    out = Path(out_dir)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out}: already exists (pass overwrite=True / --overwrite to replace it)")
        shutil.rmtree(out)
    with EpisodeDataset(source) as ds:
        if len(ds) == 0:
            raise ValueError(f"{ds.path}: has no episodes to export")
        hi, wi = ds.image_size
        if hi % 2 or wi % 2:
            raise ValueError(f"{ds.path}: h264 yuv420p needs even image sizes, got {hi}x{wi}")
        hz = (
            ds.embodiment.control_hz
            if ds.embodiment is not None
            else float(ds.env_args.get("control_hz", 10))
        )
        fps = round(hz)
        if abs(fps - hz) > 1e-9:
            raise ValueError(f"{ds.path}: LeRobot needs an integer fps, the control rate is {hz} Hz")
        tmp = out.with_name(out.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        _write(ds, tmp, fps=fps, video=video, robot_type=robot_type)
        tmp.rename(out)  # a crash never leaves a half-written directory under the final name
    return out


def declared_camera_keys(suite_name: str) -> dict[str, str]:
    """The LeRobot camera keys the dataset's suite declares (`lerobot_camera_keys`), if it is registered."""
    from vla.envs.base import get_suite

    if not suite_name:
        return {}
    try:
        suite = get_suite(suite_name)
    except KeyError:
        return {}
    return dict(getattr(suite, "lerobot_camera_keys", {}) or {})


def _write(ds: EpisodeDataset, out: Path, *, fps: int, video: VideoConfig, robot_type: str | None) -> None:
    tasks: list[str] = []
    task_of: dict[str, int] = {}
    for s in ds.instructions:
        if s not in task_of:
            task_of[s] = len(tasks)
            tasks.append(s)
    lengths = ds.lengths
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    total = int(lengths.sum())

    # Frames: one row per step, episodes concatenated.
    states, actions = zip(*(ds.read_low_dim(i) for i in range(len(ds))), strict=True)
    state = np.concatenate(states)  # (N, S)
    action = np.concatenate(actions)  # (N, A)
    frame_index = np.concatenate([np.arange(n) for n in lengths]).astype(np.int64)
    episode_index = np.repeat(np.arange(len(ds)), lengths).astype(np.int64)
    task_index = np.repeat([task_of[s] for s in ds.instructions], lengths).astype(np.int64)
    timestamp = (frame_index / fps).astype(np.float32)
    S, A = state.shape[1], action.shape[1]
    table = pa.table(
        {
            lf.STATE_KEY: pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), S),
            lf.ACTION_KEY: pa.FixedSizeListArray.from_arrays(pa.array(action.reshape(-1)), A),
            "timestamp": pa.array(timestamp),
            "frame_index": pa.array(frame_index),
            "episode_index": pa.array(episode_index),
            "index": pa.array(np.arange(total, dtype=np.int64)),
            "task_index": pa.array(task_index),
        }
    ).replace_schema_metadata({"huggingface": lf.hf_features_metadata(S, A)})
    data_path = out / lf.DATA_PATH.format(chunk_index=0, file_index=0)
    data_path.parent.mkdir(parents=True)
    pq.write_table(table, data_path)

    # Videos: one file per camera, episodes back to back.
    image_stats = {}
    keys = lf.camera_keys(ds.cameras, declared_camera_keys(ds.suite))
    for cam in ds.cameras:
        key = keys[cam]
        vpath = out / lf.VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
        vpath.parent.mkdir(parents=True)
        sample = []
        writer: Any = imageio.get_writer(
            vpath,
            format="FFMPEG",
            fps=fps,
            codec="libx264",
            quality=None,
            pixelformat="yuv420p",
            macro_block_size=1,
            ffmpeg_log_level="error",
            ffmpeg_params=["-crf", str(video.crf), "-preset", video.preset, "-g", str(video.gop)],
        )
        with writer:
            for i in range(len(ds)):
                frames = ds.read_frames(i, cam)
                for frame in frames:
                    writer.append_data(frame)
                sample.append(frames[:: max(1, len(frames) // 8)])
        image_stats[key] = lf.image_stats(np.concatenate(sample))

    # Episodes metadata.
    from_ts = (starts / fps).astype(np.float64)
    to_ts = ((starts + lengths) / fps).astype(np.float64)
    columns: dict[str, pa.Array] = {
        "episode_index": pa.array(np.arange(len(ds), dtype=np.int64)),
        "tasks": pa.array([[s] for s in ds.instructions], type=pa.list_(pa.string())),
        "length": pa.array(lengths.astype(np.int64)),
        "data/chunk_index": pa.array(np.zeros(len(ds), dtype=np.int64)),
        "data/file_index": pa.array(np.zeros(len(ds), dtype=np.int64)),
        "dataset_from_index": pa.array(starts.astype(np.int64)),
        "dataset_to_index": pa.array((starts + lengths).astype(np.int64)),
    }
    for cam in ds.cameras:
        key = keys[cam]
        columns[f"videos/{key}/chunk_index"] = pa.array(np.zeros(len(ds), dtype=np.int64))
        columns[f"videos/{key}/file_index"] = pa.array(np.zeros(len(ds), dtype=np.int64))
        columns[f"videos/{key}/from_timestamp"] = pa.array(from_ts)
        columns[f"videos/{key}/to_timestamp"] = pa.array(to_ts)
    for key, values in ((lf.STATE_KEY, state), (lf.ACTION_KEY, action)):
        per_ep = [lf.feature_stats(values[a : a + n]) for a, n in zip(starts, lengths, strict=True)]
        for stat in per_ep[0]:
            columns[f"stats/{key}/{stat}"] = pa.array([e[stat] for e in per_ep])
    columns[lf.VLA_SUCCESS_COLUMN] = pa.array([info.success for info in ds.infos])
    columns[lf.VLA_META_COLUMN] = pa.array([json.dumps(info.meta, sort_keys=True) for info in ds.infos])
    columns["meta/episodes/chunk_index"] = pa.array(np.zeros(len(ds), dtype=np.int64))
    columns["meta/episodes/file_index"] = pa.array(np.zeros(len(ds), dtype=np.int64))
    ep_path = out / lf.EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_path.parent.mkdir(parents=True)
    pq.write_table(pa.table(columns), ep_path)
    pq.write_table(lf.tasks_table(tasks), out / lf.TASKS_PATH)

    # Statistics: LeRobot's set for every feature, state/action with our exact q01/q99.
    stats = {lf.STATE_KEY: lf.feature_stats(state), lf.ACTION_KEY: lf.feature_stats(action), **image_stats}
    for key, values in (
        ("timestamp", timestamp[:, None]),
        ("frame_index", frame_index[:, None]),
        ("episode_index", episode_index[:, None]),
        ("index", np.arange(total)[:, None]),
        ("task_index", task_index[:, None]),
    ):
        stats[key] = lf.feature_stats(values)
    (out / lf.STATS_PATH).write_text(json.dumps(stats, indent=2))
    (out / lf.INFO_PATH).write_text(json.dumps(_info(ds, fps, total, len(tasks), robot_type), indent=2))


def _info(ds: EpisodeDataset, fps: int, total: int, n_tasks: int, robot_type: str | None) -> dict:
    emb = ds.embodiment
    if emb is not None:
        state_names = _names([(f.name, f.size) for f in emb.state_fields])
        action_names = _names([(g.name, g.size) for g in emb.action_space().groups])
    else:
        state_names = [f"state_{i}" for i in range(ds.state_dim)]
        action_names = [f"action_{i}" for i in range(ds.action_dim)]
    hi, wi = ds.image_size
    features: dict[str, dict] = {}
    keys = lf.camera_keys(ds.cameras, declared_camera_keys(ds.suite))
    for cam in ds.cameras:
        features[keys[cam]] = {
            "dtype": "video",
            "shape": [hi, wi, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": hi,
                "video.width": wi,
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
            },
        }
    features[lf.STATE_KEY] = {"dtype": "float32", "shape": [ds.state_dim], "names": state_names}
    features[lf.ACTION_KEY] = {"dtype": "float32", "shape": [ds.action_dim], "names": action_names}
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for key in ("frame_index", "episode_index", "index", "task_index"):
        features[key] = {"dtype": "int64", "shape": [1], "names": None}
    return {
        "codebase_version": lf.CODEBASE_VERSION,
        "robot_type": robot_type or (emb.name if emb is not None else "unknown"),
        "total_episodes": len(ds),
        "total_frames": total,
        "total_tasks": n_tasks,
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": {"train": f"0:{len(ds)}"},
        "data_path": lf.DATA_PATH,
        "video_path": lf.VIDEO_PATH,
        "features": features,
        lf.VLA_INFO_KEY: {
            "embodiment": emb.to_dict() if emb is not None else None,
            "suite": ds.suite,
            "env_args": ds.env_args,
            "camera_keys": keys,
        },
    }
