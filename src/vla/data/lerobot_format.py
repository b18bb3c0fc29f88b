"""Facts about the LeRobotDataset v3.0 layout (as written by lerobot 0.4.4), shared by export and import.

```
meta/info.json                         codebase_version "v3.0", fps, features, path templates, totals
meta/stats.json                        per feature: min/max/mean/std/count/q01/q10/q50/q90/q99
meta/tasks.parquet                     task_index, task string as the pandas index
meta/episodes/chunk-000/file-000.parquet   one row per episode: offsets into data and video files
data/chunk-000/file-000.parquet        one row per frame, many episodes per file
videos/observation.images.<cam>/chunk-000/file-000.mp4    episodes concatenated in time
```
Videos are decoded at `from_timestamp + timestamp`, so a frame's `timestamp` is frame_index / fps.
"""

from __future__ import annotations

from typing import Any

import json

import numpy as np
import pyarrow as pa

CODEBASE_VERSION = "v3.0"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
TASKS_PATH = "meta/tasks.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
# Where vla keeps what LeRobot has no field for (embodiment, success, family, ...): an extra info.json
# key and extra episode columns, both ignored by lerobot.
VLA_INFO_KEY = "vla"
VLA_META_COLUMN = "vla/meta"
VLA_SUCCESS_COLUMN = "vla/success"


# LeRobot's key for the one camera of a single-camera dataset (its PushT and Meta-World datasets).
SINGLE_IMAGE_KEY = "observation.image"


def video_key(camera: str) -> str:
    return f"{IMAGE_PREFIX}{camera}"


def camera_keys(cameras: list[str] | tuple[str, ...], declared: dict[str, str]) -> dict[str, str]:
    """camera -> LeRobot feature key: the suite's declared key (`lerobot_camera_keys`, e.g. Meta-World's
    `observation.image`) or `observation.images.<camera>`."""
    return {cam: declared.get(cam, video_key(cam)) for cam in cameras}


def camera_features(feats: dict[str, Any], vla_info: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """camera name -> (feature key, feature) of a LeRobot info.json: every `observation.images.<cam>`,
    and `observation.image`, named back by vla's own export record or else called "image"."""
    cams = {k[len(IMAGE_PREFIX) :]: (k, v) for k, v in feats.items() if k.startswith(IMAGE_PREFIX)}
    if SINGLE_IMAGE_KEY in feats:
        back = {key: cam for cam, key in (vla_info.get("camera_keys") or {}).items()}
        cams[back.get(SINGLE_IMAGE_KEY, "image")] = (SINGLE_IMAGE_KEY, feats[SINGLE_IMAGE_KEY])
    return cams


def feature_stats(x: np.ndarray) -> dict[str, list]:
    """LeRobot-style statistics of x [N, ...] over axis 0 (lists, for stats.json)."""
    x64 = np.asarray(x, dtype=np.float64)
    q = np.quantile(x64, QUANTILES, axis=0)
    out: dict[str, list] = {
        "min": x64.min(axis=0).tolist(),
        "max": x64.max(axis=0).tolist(),
        "mean": x64.mean(axis=0).tolist(),
        "std": x64.std(axis=0).tolist(),
        "count": [int(x64.shape[0])],
    }
    for level, values in zip(QUANTILES, q, strict=True):
        out[f"q{round(level * 100):02d}"] = values.tolist()
    return out


def image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per-channel statistics of uint8 frames [N, Hi, Wi, 3] in [0, 1], shaped [3, 1, 1] like LeRobot."""
    pixels = frames.reshape(-1, 3).astype(np.float64) / 255.0  # (N*Hi*Wi, 3)
    stats = feature_stats(pixels)
    stats.pop("count")  # LeRobot counts frames, not pixels
    out: dict[str, list] = {k: [[[v]] for v in vals] for k, vals in stats.items()}
    out["count"] = [int(frames.shape[0])]
    return out


def hf_features_metadata(state_dim: int, action_dim: int) -> bytes:
    """The `huggingface` schema metadata that `datasets` writes into LeRobot data files."""
    value = lambda dtype: {"dtype": dtype, "_type": "Value"}  # noqa: E731
    features = {
        STATE_KEY: {"feature": value("float32"), "length": state_dim, "_type": "List"},
        ACTION_KEY: {"feature": value("float32"), "length": action_dim, "_type": "List"},
        "timestamp": value("float32"),
        "frame_index": value("int64"),
        "episode_index": value("int64"),
        "index": value("int64"),
        "task_index": value("int64"),
    }
    return json.dumps({"info": {"features": features}}).encode()


def tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet: pandas reads it back with the task strings as the index (as lerobot expects)."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    table = pa.table(
        {
            "task_index": pa.array(range(len(tasks)), type=pa.int64()),
            "__index_level_0__": pa.array(tasks, type=pa.large_string()),
        }
    )
    return table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
