"""The optimizer and its schedule: AdamW with one parameter group per policy module, warm-up + cosine.

Each top-level module of the policy (`vision`, `language`, `state`, `fusion`, `head`, `goal`,
`grounding`) gets its own AdamW groups (one with weight decay for matrices, one without), carrying
`module` and `lr_scale` keys; every step sets a group's LR to the schedule's value times its
`lr_scale` (`TrainConfig.lr_scale`), so a pretrained encoder can learn slower than freshly initialized
heads. The keys are plain JSON, saved with the optimizer state, so a resumed run keeps its groups.
"""

from __future__ import annotations

import math

import torch

from vla.config import TrainConfig
from vla.registry import did_you_mean


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Base learning rate at `step`: linear warm-up, then cosine decay to `lr * min_lr_ratio`.

    Args:
        step: the optimizer step (0-based).
        cfg: the run's config (lr, warmup_steps, steps, min_lr_ratio).

    Returns:
        the LR of a module whose `lr_scale` is 1.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def check_module_names(cfg: TrainConfig, modules: tuple[str, ...] | list[str]) -> None:
    """Refuses `lr_scale` keys and stage `frozen` names that are not policy modules (a typo would
    otherwise train, or freeze, nothing different and say nothing).

    Args:
        cfg: the run's config.
        modules: the top-level module names a policy can have (`vla.models.policy.PREFIXES`).
    """
    named = [(f"lr_scale['{m}']", m) for m in cfg.lr_scale]
    named += [(f"stages[{i}].frozen", m) for i, s in enumerate(cfg.stages) for m in s.frozen]
    for where, name in named:
        if name not in modules:
            raise ValueError(
                f"TrainConfig.{where}: '{name}' is not a policy module.{did_you_mean(name, modules)} "
                f"Modules: {', '.join(modules)}"
            )


def make_optimizer(policy: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, two groups per top-level module (decay / no decay).

    Weight decay applies to matrices only (not to norms, biases or embeddings' scales). Each group's
    `lr_scale` is `cfg.lr_scale.get(module, 1.0)`; `train_step` multiplies the step's LR by it.

    Args:
        policy: the policy (or any module; its top-level child names are the module names).
        cfg: the run's config (weight_decay, betas, lr, lr_scale).

    Returns:
        the optimizer; its groups carry `module` and `lr_scale` keys.
    """
    by_module: dict[str, tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]] = {}
    for name, p in policy.named_parameters():
        if p.requires_grad:
            decay, no_decay = by_module.setdefault(name.split(".", 1)[0], ([], []))
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = []
    for module, (decay, no_decay) in by_module.items():
        scale = float(cfg.lr_scale.get(module, 1.0))
        for params, wd in ((decay, cfg.weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "weight_decay": wd, "module": module, "lr_scale": scale})
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> dict[str, float]:
    """Sets every group's LR to `lr` times its `lr_scale`; returns the scaled LRs as `lr/<module>`
    for the modules whose scale is not 1 (what the metrics log)."""
    scaled = {}
    for group in optimizer.param_groups:
        scale = float(group.get("lr_scale", 1.0))
        group["lr"] = lr * scale
        if scale != 1.0:
            scaled[f"lr/{group.get('module', '?')}"] = lr * scale
    return scaled
