"""Typed configs of the training loop and the evaluator, with JSON round-trip and `key=value` overrides.

Model configs live beside the models (`vla.models.PolicyConfig`); these configs only name a preset and
carry overrides for it, so a training run's `config.json` says everything needed to reproduce it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla.envs.base import DEFAULT_SUITE

# Re-exported: the configs' parsing lives in `vla.overrides`, one parser for every config.
from vla.overrides import apply_overrides as apply_overrides
from vla.overrides import from_dict as from_dict


@dataclass(frozen=True)
class Stage:
    """One stage of staged fine-tuning: top-level policy modules kept frozen until `until_step`.

    Stages run in order; after the last one nothing is frozen. The 3-stage recipe of
    `docs/examples/three_stage.json` freezes the pretrained encoders while the heads warm up, then
    unfreezes vision, then everything: `(Stage(500, ("vision", "language")), Stage(2000, ("language",)))`.

    Attributes:
        until_step: the first step that is no longer in this stage.
        frozen: module names (`vision`, `language`, ...) whose parameters get no updates meanwhile.
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
        paraphrase_prob: probability of replacing an instruction by a paraphrase (data of a suite that offers `paraphrase`).
        stages: staged fine-tuning schedule (see `Stage`).
        lr_scale: learning-rate multiplier per top-level policy module (`vision`, `language`,
            `state`, `fusion`, `head`, `goal`, `grounding`), e.g. `{"vision": 0.1}`; unlisted modules
            use 1. Each module has its own AdamW parameter groups, at the schedule's LR times its scale.
        amp: mixed precision of the forward pass: "auto" (bf16 autocast on a CUDA device that supports
            it, fp32 otherwise), "bf16" (bf16 autocast on any device, also the CPU: faster on one with
            AVX512-BF16, docs/measured.md, but every figure there was trained in fp32) or "off" (fp32).
        time_budget_s: stop (and save) once this much wall time is spent (0: no limit).
        grounding: a grounding file (`vla collect-grounding`) to co-train the policy's grounding head
            on; required by, and only allowed for, a policy with grounding_loss > 0.
        grounding_batch: labelled views per step beside the `batch_size` demonstration windows.
        init_from: a checkpoint directory to start from (fine-tuning, e.g. a DAgger round): its weights
            and normalization statistics, which the new data does not change. The preset and policy
            overrides must build the checkpoint's own policy config.
        joint_with: datasets of other robots to train one joint policy with (`vla.models.joint`:
            a shared vision-language trunk, per-robot state encoder, fusion and heads). Every robot
            gets the same share of each batch (`batch_size` windows split evenly across robots);
            the checkpoint is a directory of per-robot checkpoints.
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
    lr_scale: dict[str, float] = field(default_factory=dict)
    amp: str = "auto"
    time_budget_s: float = 0.0
    grounding: str = ""
    grounding_batch: int = 32
    init_from: str = ""
    joint_with: tuple[str, ...] = ()

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
        for name, scale in self.lr_scale.items():
            if not name or "." in name:
                raise ValueError(f"TrainConfig.lr_scale keys are top-level module names, got '{name}'")
            if not (math.isfinite(scale) and scale >= 0):
                raise ValueError(f"TrainConfig.lr_scale['{name}'] must be a finite number >= 0, got {scale}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"TrainConfig.amp must be 'auto', 'bf16' or 'off', got '{self.amp}'")
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


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The JSON object in a config file (`vla train --config FILE`), for `from_dict`.

    Args:
        path: a `.json` file holding one object of config fields.

    Returns:
        the object, unvalidated (`from_dict` checks names and types).
    """
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        raise ValueError(f"{path}: config files are JSON (vla does not depend on a YAML parser)")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file holds one JSON object, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation of a checkpoint in a simulated suite. Saved inside `results.json`.

    Attributes:
        checkpoint: the checkpoint directory.
        suite: simulator suite name (`vla env list`).
        split: which split of the suite (`vla env list` shows each suite's splits).
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
        oracle_features: diagnostic for policies that estimate episode features (grounding): act
            on the env's true values (the reset `info[name]`) instead of the policy's own held estimate, which
            separates perception errors from control errors. Results say so; never a headline figure.
        perturb: sensor perturbations of what the policy observes, "kind=value", composed in order
            (`vla.rollout.perturb`: noise, blur, dropout, occluder, state_noise).
        instruction_check: hold, without calling the policy, on an instruction the checkpoint's
            instruction check refuses (`vla.models.instruction_check`; a checkpoint without one acts
            on everything). Off measures the policy alone.
        detector_grounding: replace the instructed objects' positions in a grounding policy's held
            first-frame estimate by where the checkpoint's presence net sees them (the suite's
            `refine_estimates`; docs/tabletop.md). None (the default): on for a policy with a grounding
            head whose checkpoint has a presence check (`vla models presence DIR`), in a suite that
            can refine; true: on, an error when it cannot be; false: off. results.json records the
            value used.
    """

    checkpoint: str
    suite: str = DEFAULT_SUITE
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
    oracle_features: bool = False
    perturb: tuple[str, ...] = ()
    instruction_check: bool = True
    detector_grounding: bool | None = None

    def __post_init__(self) -> None:
        from vla.rollout.perturb import Perturbation

        for spec in self.perturb:
            Perturbation.parse(spec)  # a bad spec fails here, before any rollout
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
