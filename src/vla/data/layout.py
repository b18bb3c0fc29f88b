"""The on-disk layout of a vla dataset: one HDF5 file, robomimic-compatible.

```
/                         attrs: vla_format, embodiment (JSON), suite, env_args (JSON), shapes (JSON),
                                 stats (JSON, once computed)
/data                     attrs: episodes (JSON list of committed demo names, written last), total,
                                 env_args (JSON, robomimic reads it here)
/data/demo_N              attrs: num_samples, instruction, success, meta (JSON) + scalar extras
                                 (family, split, seed, ...) as plain attributes
/data/demo_N/obs/<cam>_image   uint8   [N, Hi, Wi, 3]   one chunk per frame, gzip-1 (default) or lzf
/data/demo_N/obs/state         float32 [N, S]
/data/demo_N/actions           float32 [N, A]
/data/demo_N/timestamps        float64 [N]
/data/demo_N/rewards           float32 [N]   1 on the last step of a successful episode (robomimic)
/data/demo_N/dones             uint8   [N]   1 on the last step (robomimic)
```
"""

from __future__ import annotations

FORMAT = "vla-hdf5/1"
IMAGE_SUFFIX = "_image"
STATE_KEY = "state"
COMPRESSIONS = ("lzf", "gzip", "none")


def image_key(camera: str) -> str:
    """Returns the obs key under which `camera`'s frames are stored (robomimic names images *_image)."""
    return f"{camera}{IMAGE_SUFFIX}"


def demo_name(index: int) -> str:
    return f"demo_{index}"


def demo_number(name: str) -> int:
    """Returns N of "demo_N" (for sorting files written by other tools)."""
    try:
        return int(name.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return -1
