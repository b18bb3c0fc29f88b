"""Where one training process runs: its device, distributed backend and mixed precision.

Read from the environment torchrun sets (`WORLD_SIZE`, `LOCAL_RANK`) and from what torch sees
(`torch.cuda.is_available()`, `device_count()`), so `vla train` needs no per-rank flags: under
`torchrun --nproc_per_node=N` on a GPU machine rank r trains on `cuda:<LOCAL_RANK>` with nccl; on a CPU
every rank uses gloo. bf16 autocast needs no loss scaling (bf16 keeps fp32's exponent range), unlike fp16,
which is not offered.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

AMP_MODES = ("auto", "bf16", "off")


@dataclass(frozen=True)
class Placement:
    """Where and how one training process computes.

    Attributes:
        device: "cpu" or "cuda:<index>" (under torchrun, the index is the rank's LOCAL_RANK).
        backend: process-group backend when distributed ("nccl" on CUDA, "gloo" on the CPU), else "".
        world_size: processes in the run (1 without torchrun).
        local_rank: this process's rank on its machine (0 without torchrun).
        amp_dtype: autocast dtype of the forward pass (torch.bfloat16), or None for fp32.
    """

    device: str
    backend: str
    world_size: int
    local_rank: int
    amp_dtype: torch.dtype | None

    @property
    def distributed(self) -> bool:
        """Whether this process is one of several (DistributedDataParallel)."""
        return self.world_size > 1

    @property
    def cuda_index(self) -> int | None:
        """The CUDA device index, or None on the CPU."""
        return int(self.device.split(":")[1]) if self.device.startswith("cuda:") else None


def resolve_placement(
    device: str = "auto", amp: str = "auto", *, env: Mapping[str, str] | None = None
) -> Placement:
    """Picks the device, backend and autocast dtype of this process; changes nothing.

    Args:
        device: "auto" (CUDA when available, else the CPU), "cpu", "cuda" (under torchrun:
            `cuda:<LOCAL_RANK>`) or "cuda:N" (single process only).
        amp: "auto" (bf16 on a CUDA device that supports it, fp32 otherwise), "bf16" (bf16 autocast
            on any device, the CPU included) or "off" (fp32). "auto" keeps CPUs in fp32, the precision
            every measured training figure used.
        env: the environment to read (default: `os.environ`).

    Returns:
        the placement.

    Raises:
        ValueError: for an unknown device or amp mode, CUDA asked for but absent, a LOCAL_RANK beyond
            the visible GPUs, or bf16 asked for on a GPU without bf16 support.
    """
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", 1, minimum=1)
    local = _env_int(env, "LOCAL_RANK", 0, minimum=0)
    kind, sep, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda") or (sep and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got '{device}'")
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got '{amp}'")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if amp == "bf16" else None
    if kind == "cpu":
        name = "cpu"
    else:
        if not torch.cuda.is_available():
            raise ValueError(
                f"device '{device}' asked for, but torch.cuda.is_available() is False "
                "(a CPU-only torch build, or no GPU visible); use --device cpu or auto"
            )
        if index and world > 1:
            raise ValueError(
                f"device '{device}': under torchrun every rank trains on cuda:<LOCAL_RANK>; pass "
                "--device cuda (choose the GPUs with CUDA_VISIBLE_DEVICES)"
            )
        idx = int(index) if index else local
        count = torch.cuda.device_count()
        if idx >= count:
            raise ValueError(
                f"cuda:{idx} does not exist (LOCAL_RANK={local}): {count} CUDA device(s) visible; "
                "start at most that many processes per machine"
            )
        name = f"cuda:{idx}"
        bf16 = torch.cuda.is_bf16_supported()
        if amp == "bf16" and not bf16:
            raise ValueError(f"amp 'bf16' asked for, but {name} does not support bfloat16; use amp=off")
        if amp == "auto" and bf16:
            dtype = torch.bfloat16
    backend = ("nccl" if kind == "cuda" else "gloo") if world > 1 else ""
    return Placement(device=name, backend=backend, world_size=world, local_rank=local, amp_dtype=dtype)


def autocast(
    device: torch.device | str, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[None]:
    """Autocast to `dtype` on `device`'s type, or a no-op context when `dtype` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}='{raw}' must be an integer") from None
    if value < minimum:
        raise ValueError(f"environment variable {name}={value} must be >= {minimum}")
    return value
