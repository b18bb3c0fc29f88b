"""Typed configs of the training loop and the evaluator, with JSON round-trip and `key=value` overrides.

Model configs live beside the models (`vla.models.PolicyConfig`); these configs only name a preset and
carry overrides for it, so a training run's `config.json` says everything needed to reproduce it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from vla.registry import lookup

C = TypeVar("C")


@dataclass(frozen=True)
class Stage:
    """One stage of staged fine-tuning: module-name prefixes kept frozen until `until_step`.

    The seeds' 3-stage recipe, e.g. freeze the pretrained encoders while the head warms up, then unfreeze
    the vision encoder, then everything: `(Stage(1000, ("vision", "language")), Stage(3000, ("language",)))`.
    """

    until_step: int
    frozen: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.until_step <= 0:
            raise ValueError(f"Stage.until_step must be positive, got {self.until_step}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. Saved as `train_config.json` in the run directory.

    Attributes:
        dataset: path of the HDF5 dataset (its stats and embodiment go into the checkpoint).
        out: run directory; the deployable checkpoint is written to `<out>/checkpoint`.
        preset: policy preset name (`vla models list`).
        policy_overrides: `key=value` strings applied to the preset, e.g. `("head.kind=flow",)`.
        steps: optimizer steps.
        batch_size: global batch size (split evenly across distributed ranks).
        lr, weight_decay, betas: AdamW.
        warmup_steps: linear warm-up, then cosine decay to `lr * min_lr_ratio`.
        grad_clip: max global gradient norm (0 disables).
        ema_decay: decay of the exponential moving average of weights saved as the checkpoint (0 disables).
        val_fraction: share of episodes (per family) held out for validation.
        val_every: steps between validation passes (0 disables).
        val_batches: batches per validation pass.
        early_stop_patience: validation passes without improvement before stopping (0 disables).
        save_every: steps between checkpoints (the last step always saves).
        seed: seeds initialization, data order and augmentation.
        threads: torch intra-op threads per process.
        balance_families: sample every task family equally often.
        families: train only on these families (empty: all).
        augment: image augmentation (random shift, colour jitter, ...) and instruction paraphrasing.
        paraphrase_prob: probability of replacing an instruction by a paraphrase (tabletop data only).
        stages: staged fine-tuning schedule (see `Stage`).
        time_budget_s: stop (and save) once this much wall time is spent (0: no limit).
        grounding: a grounding file (`vla collect-grounding`) to co-train the policy's grounding head
            on; required by, and only allowed for, a policy with grounding_loss > 0.
        grounding_batch: labelled views per step beside the `batch_size` demonstration windows.
    """

    dataset: str
    out: str = "runs/train"
    preset: str = "default"
    policy_overrides: tuple[str, ...] = ()
    steps: int = 4000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    val_fraction: float = 0.05
    val_every: int = 500
    val_batches: int = 4
    early_stop_patience: int = 0
    save_every: int = 1000
    seed: int = 0
    threads: int = 2
    balance_families: bool = True
    families: tuple[str, ...] = ()
    augment: bool = True
    paraphrase_prob: float = 0.3
    stages: tuple[Stage, ...] = field(default_factory=tuple)
    time_budget_s: float = 0.0
    grounding: str = ""
    grounding_batch: int = 32

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "threads", "grounding_batch")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        nonneg = (
            "warmup_steps",
            "grad_clip",
            "val_every",
            "val_batches",
            "early_stop_patience",
            "save_every",
        )
        for name in nonneg:
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"TrainConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0.0 <= self.paraphrase_prob <= 1.0:
            raise ValueError(f"TrainConfig.paraphrase_prob must be in [0, 1], got {self.paraphrase_prob}")
        if self.time_budget_s < 0:
            raise ValueError(f"TrainConfig.time_budget_s must be >= 0, got {self.time_budget_s}")
        for o in self.policy_overrides:
            if "=" not in o:
                raise ValueError(f"policy override '{o}' must look like key=value (e.g. head.kind=flow)")
        ends = [s.until_step for s in self.stages]
        if ends != sorted(ends):
            raise ValueError(f"TrainConfig.stages must be ordered by until_step, got {ends}")

    def frozen_prefixes(self, step: int) -> tuple[str, ...]:
        """Module-name prefixes frozen at `step` under the stage schedule."""
        for stage in self.stages:
            if step < stage.until_step:
                return stage.frozen
        return ()


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready data (tuples become lists)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Builds config `cls` from `to_dict` output, rejecting unknown keys with a did-you-mean."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            lookup(dict.fromkeys(names), key, kind=f"{cls.__name__} field")
        kwargs[key] = _coerce(hints[key], value, where=f"{cls.__name__}.{key}")
    return cls(**kwargs)


def apply_overrides(cfg: C, overrides: list[str] | tuple[str, ...]) -> C:
    """Returns `cfg` with `key=value` strings applied, parsed by each field's declared type.

    Tuples take comma-separated values (`families=pick_up,push`); booleans take true/false/1/0.
    """
    hints = typing.get_type_hints(type(cfg))
    names = {f.name for f in fields(cfg)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ValueError(f"override '{item}' must look like key=value")
        if key not in names:
            lookup(dict.fromkeys(names), key, kind=f"{type(cfg).__name__} field")
        changes[key] = _parse(hints[key], raw.strip(), where=key)
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


def _parse(tp: Any, raw: str, *, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        items = [s for s in raw.split(",") if s.strip()] if raw else []
        if args and args[-1] is Ellipsis:
            return tuple(_parse(args[0], s.strip(), where=where) for s in items)
        if len(items) != len(args):
            raise ValueError(f"{where}: expected {len(args)} comma-separated values, got '{raw}'")
        return tuple(_parse(a, s.strip(), where=where) for a, s in zip(args, items, strict=True))
    if tp is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{where}: expected true or false, got '{raw}'")
    if tp in (int, float, str):
        try:
            return tp(raw)
        except ValueError:
            raise ValueError(f"{where}: expected {tp.__name__}, got '{raw}'") from None
    raise ValueError(
        f"{where}: cannot be set from the command line (type {tp}); edit the config JSON instead"
    )


def _coerce(tp: Any, value: Any, *, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        elem = args[0] if args and args[-1] is Ellipsis else None
        if elem is not None:
            return tuple(_coerce(elem, v, where=where) for v in value)
        return tuple(_coerce(a, v, where=where) for a, v in zip(args, value, strict=True))
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value)  # type: ignore[arg-type]
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
    if isinstance(tp, types.UnionType):
        return value
    return value


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation of a checkpoint in a simulated suite. Saved inside `results.json`.

    Attributes:
        checkpoint: the checkpoint directory.
        suite: simulator suite name (`vla env list`).
        split: which split of the suite (tabletop: train, unseen, paraphrase, randomized).
        families: task families to evaluate (empty: all of the suite's).
        episodes_per_task: episodes per family.
        workers: parallel rollout processes.
        envs_per_worker: episodes each process runs side by side, their policy calls batched into one
            model call (`vla.rollout`); 1 calls the model once per episode.
        seed: seed of episode 0; episode i of every family uses seed + i (distinct from collection seeds).
        controller: "chunk" (execute `execute_steps` of each chunk, then re-plan) or "ensemble".
        execute_steps: actions run per chunk in chunk mode (0: the policy's `config.steps_per_chunk`).
        safety: run the safety filter (on by default; turning it off is explicit).
        videos_per_family: episodes per family saved as video (and shown in the report).
        out: where results.json, report.html and videos go.
        threads_per_worker: torch threads in each rollout process.
        oracle_scene: diagnostic for grounding policies: act on the simulator's true scene labels
            (the episode's `grounding_labels`) instead of the policy's own held estimate, which
            separates perception errors from control errors. Results say so; never a headline figure.
    """

    checkpoint: str
    suite: str = "tabletop"
    split: str = "train"
    families: tuple[str, ...] = ()
    episodes_per_task: int = 10
    workers: int = 2
    envs_per_worker: int = 1
    seed: int = 100_000
    controller: str = "chunk"
    execute_steps: int = 0
    safety: bool = True
    videos_per_family: int = 1
    out: str = "runs/eval"
    threads_per_worker: int = 1
    oracle_scene: bool = False

    def __post_init__(self) -> None:
        if self.episodes_per_task <= 0:
            raise ValueError(f"EvalConfig.episodes_per_task must be positive, got {self.episodes_per_task}")
        if self.workers <= 0:
            raise ValueError(f"EvalConfig.workers must be positive, got {self.workers}")
        if self.envs_per_worker <= 0:
            raise ValueError(f"EvalConfig.envs_per_worker must be positive, got {self.envs_per_worker}")
        if self.controller not in ("chunk", "ensemble"):
            raise ValueError(f"EvalConfig.controller must be 'chunk' or 'ensemble', got '{self.controller}'")
        if self.execute_steps < 0 or self.videos_per_family < 0 or self.threads_per_worker <= 0:
            raise ValueError(
                "EvalConfig: execute_steps and videos_per_family must be >= 0, threads_per_worker > 0"
            )
