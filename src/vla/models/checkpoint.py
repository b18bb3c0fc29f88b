"""Checkpoint directories: the only thing a deployment needs, and loading them never runs code.

config.json        PolicyConfig (validated on load)
model.safetensors  weights (safetensors only; pickled .bin/.pt/.pkl files are never opened)
stats.json         normalization statistics (DatasetStats); a checkpoint without them does not load
metadata.json      embodiment, declared features, cameras, image size, instruction encoder, vla version,
                   caller's extras
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import vla
from vla.features import features_from_json, features_to_json
from vla.models.config import PolicyConfig
from vla.models.language import encoder_name
from vla.models.policy import Policy
from vla.spaces import Embodiment
from vla.types import DatasetStats

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
FORMAT_VERSION = 1


def save_policy(policy: Policy, directory: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
    """Writes the four checkpoint files into `directory` (created if needed) and returns it."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    cfg = policy.config
    state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    save_file(
        state, str(out / "model.safetensors"), metadata={"format": "pt", "vla_version": vla.__version__}
    )
    _write_json(out / "config.json", cfg.to_dict())
    _write_json(out / "stats.json", policy.stats.to_dict())
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "vla_version": vla.__version__,
        "policy": cfg.name,
        "embodiment": policy.embodiment.to_dict(),
        "features": features_to_json(policy.features),
        "cameras": list(cfg.cameras),
        "image_size": list(cfg.image_size),
        "obs_horizon": cfg.obs_horizon,
        "action_horizon": cfg.action_horizon,
        "action_dim": policy.action_dim,
        "state_dim": policy.state_dim,
        "instruction_encoder": encoder_name(cfg.language),
        "num_params": policy.num_params(),
    }
    backbone = getattr(policy.vision.first.backbone, "hf_config", None)
    if backbone is not None:
        meta["vision_backbone_config"] = backbone
    reserved = sorted(set(metadata or {}) & set(meta))
    if reserved:
        raise ValueError(f"metadata keys {reserved} are written by vla itself; choose other names")
    meta.update(metadata or {})
    _write_json(out / "metadata.json", meta)
    return out


def load_policy(
    directory: str | Path, *, device: str | torch.device = "cpu", embodiment: str | None = None
) -> Policy:
    """Loads a checkpoint directory written by `save_policy`, or robot `embodiment`'s part of a joint
    checkpoint (`vla.models.joint`, `vla.checkpoint_layout`).

    Raises:
        FileNotFoundError: the directory does not exist.
        ValueError: missing stats.json / config.json / metadata.json, only pickled weights, an invalid
            config, or weights that do not match the config; a joint checkpoint without `embodiment`
            or without a head for it; an ordinary checkpoint of another robot than `embodiment`.
    """
    from vla.checkpoint_layout import member_directory

    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"checkpoint directory '{d}' does not exist")
    d = member_directory(d, embodiment)
    weights = d / "model.safetensors"
    if not weights.is_file():
        pickles = sorted(p.name for p in d.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ValueError(
                f"checkpoint '{d}' has pickled weights {pickles} but no model.safetensors; vla will not "
                "unpickle (it can run arbitrary code). Convert the weights to safetensors first."
            )
        raise ValueError(f"checkpoint '{d}' has no model.safetensors")
    if not (d / "stats.json").is_file():
        raise ValueError(
            f"checkpoint '{d}' has no stats.json: without its normalization statistics a policy would "
            "output actions in the wrong units, so it is not loaded"
        )
    for name in ("config.json", "metadata.json"):
        if not (d / name).is_file():
            raise ValueError(f"checkpoint '{d}' has no {name}")
    cfg = PolicyConfig.from_dict(_read_json(d / "config.json"))
    stats = DatasetStats.from_dict(_read_json(d / "stats.json"), where=f"{d}/stats.json")
    meta = _read_json(d / "metadata.json")
    if "embodiment" not in meta:
        raise ValueError(f"checkpoint '{d}': metadata.json has no 'embodiment'")
    robot = Embodiment.from_dict(meta["embodiment"])
    if embodiment is not None and robot.name != embodiment:
        raise ValueError(f"checkpoint '{d}' drives embodiment '{robot.name}', not '{embodiment}'")
    policy = Policy(
        cfg,
        embodiment=robot,
        stats=stats,
        device="cpu",
        vision_backbone_config=meta.get("vision_backbone_config"),
        features=features_from_json(meta.get("features"), where=f"checkpoint '{d}' metadata.json"),
    )
    state = load_file(str(weights))
    result = policy.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"checkpoint '{d}': weights do not match config.json "
            f"(missing {list(result.missing_keys)[:5]}, unexpected {list(result.unexpected_keys)[:5]})"
        )
    policy.device = torch.device(device)
    return policy.to(policy.device)


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """Returns a checkpoint's metadata.json without loading weights."""
    return _read_json(Path(directory) / "metadata.json")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"'{path}' is not valid JSON: {e}") from e


def start_from(
    directory: str | Path, config: PolicyConfig, *, embodiment: Embodiment, device: str | torch.device = "cpu"
) -> Policy:
    """Loads a checkpoint to fine-tune: the policy it holds, checked against the run it starts.

    Args:
        directory: the checkpoint directory.
        config: the policy config the new run builds (preset + overrides); it must be the checkpoint's.
        embodiment: the new data's robot; the checkpoint must be able to drive it.
        device: where the policy goes.

    Raises:
        ValueError: the configs differ (the differing keys are named) or the robot does not fit.
    """
    policy = load_policy(directory, device=device)
    saved, wanted = _flat(policy.config.to_dict()), _flat(config.to_dict())
    # The vocabulary of a "vocab" encoder comes from the first run's data; the checkpoint's one is kept.
    diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k) and "vocab" not in k)
    if diff:
        raise ValueError(
            f"init_from {directory}: its policy config differs from this run's in {diff[:8]}; "
            "use the checkpoint's preset and overrides"
        )
    problems = policy.embodiment.compatible_with(embodiment)
    if problems:
        raise ValueError(
            f"init_from {directory} ({policy.embodiment.name}) cannot drive the data's robot: {problems}"
        )
    return policy


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True)
    return out
