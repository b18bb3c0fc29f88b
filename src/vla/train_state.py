"""Resumable training state on disk: weights, EMA, optimizer, RNG and counters. Never pickled.

Layout of `<run>/train_state/`:
    model.safetensors      raw (non-EMA) weights
    ema.safetensors        EMA weights (absent when EMA is off)
    optimizer.safetensors  every optimizer state tensor, flattened to `state.<param index>.<name>`
    rng.safetensors        torch CPU generator state
    state.json             step, optimizer param groups, best validation loss, patience, elapsed time

The directory is written beside the old one and swapped in with a rename, so a kill at any moment leaves
either the previous or the new state, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


@dataclass
class Counters:
    """The scalar part of the training state."""

    step: int = 0
    best_val: float = float("inf")
    bad_evals: int = 0
    elapsed_s: float = 0.0


def save_state(
    path: Path,
    *,
    model: torch.nn.Module,
    ema: dict[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
    counters: Counters,
) -> None:
    """Writes the training state atomically to `path` (a directory)."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(
        {k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors")
    )
    if ema is not None:
        save_file({k: v.contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, entry in opt["state"].items():
        for name, value in entry.items():
            tensors[f"state.{idx}.{name}"] = torch.as_tensor(value).contiguous()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    save_file({"torch": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    meta = {
        "step": counters.step,
        "best_val": counters.best_val if counters.best_val != float("inf") else None,
        "bad_evals": counters.bad_evals,
        "elapsed_s": counters.elapsed_s,
        "param_groups": opt["param_groups"],
    }
    (tmp / "state.json").write_text(json.dumps(meta, indent=1))
    _fsync_tree(tmp)
    old = path.with_name(path.name + ".old")
    if path.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)


def load_state(
    path: Path,
    *,
    model: torch.nn.Module,
    ema: dict[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
) -> Counters:
    """Restores what `save_state` wrote into the given objects; returns the counters."""
    if not path.is_dir() and path.with_name(path.name + ".old").is_dir():
        # A kill between the two renames of save_state leaves the previous state under `.old`.
        path = path.with_name(path.name + ".old")
    needed = ["model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json"]
    missing = [n for n in needed if not (path / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: cannot resume, training state is missing {missing}")
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    if ema is not None:
        if not (path / "ema.safetensors").is_file():
            raise FileNotFoundError(f"{path}: EMA is enabled but ema.safetensors is missing")
        for k, v in load_file(str(path / "ema.safetensors")).items():
            ema[k].copy_(v)
    meta = json.loads((path / "state.json").read_text())
    flat = load_file(str(path / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in flat.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(load_file(str(path / "rng.safetensors"))["torch"])
    best = meta["best_val"]
    return Counters(
        step=int(meta["step"]),
        best_val=float("inf") if best is None else float(best),
        bad_evals=int(meta["bad_evals"]),
        elapsed_s=float(meta["elapsed_s"]),
    )


def _fsync_tree(path: Path) -> None:
    for p in path.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
