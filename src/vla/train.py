"""The one training loop of vla: a pure `train_step` plus `train()`, which wires data, model and checkpoints.

Reproducibility by construction: the windows and augmentation of step k are drawn from generators seeded
with (seed, k), so a resumed run sees exactly the batches an uninterrupted run sees; the rest of the
randomness (dropout, diffusion noise) comes from torch's global generator, whose state is checkpointed.

Distributed: under `torchrun --nproc_per_node=N` every rank draws the same global batch of step k and
takes its 1/N slice; DistributedDataParallel averages gradients, so N ranks equal one process on the same
global batch. gloo on CPU; on GPUs nccl, rank r on `cuda:<LOCAL_RANK>`, the forward in bf16 autocast
(`vla.train_device`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from vla.config import TrainConfig, to_dict
from vla.data.augment import AugmentConfig, augment_batch
from vla.models import Policy, PolicyConfig, build_policy
from vla.models.checkpoint import start_from
from vla.models.instruction_check import InstructionCheck
from vla.models.joint import JointPolicy
from vla.models.language import build_vocab
from vla.models.policy import PREFIXES
from vla.train_data import TrainData, load_data
from vla.train_device import Placement, autocast, resolve_placement
from vla.train_grounding import check_grounding_config, grounding_indices
from vla.train_joint import setup_joint
from vla.train_optim import check_module_names, lr_at, make_optimizer, set_lr
from vla.train_policy import build_policy_config, fit_cameras
from vla.train_state import Counters, load_state, save_state
from vla.types import Batch, GroundingBatch, JointBatch

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- pieces
class EMA:
    """Exponential moving average of a model's floating-point state (what the checkpoint deploys)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        # Only trainable parameters and float buffers: averaging a frozen pretrained encoder is wasted work.
        self.decay = decay
        keep = {n for n, p in model.named_parameters() if p.requires_grad}
        keep |= {n for n, b in model.named_buffers() if b.is_floating_point()}
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if k in keep}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach(), 1.0 - self.decay)

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Temporarily loads the EMA weights into `model`."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        model.load_state_dict(self.shadow, strict=False)
        try:
            yield
        finally:
            model.load_state_dict(backup, strict=False)


class _LossModule(torch.nn.Module):
    """Makes `policy.loss` the forward pass, so DistributedDataParallel can wrap any policy."""

    def __init__(self, policy: Policy | JointPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(
        self, batch: Batch | JointBatch, grounding: GroundingBatch | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss, metrics = self.policy.loss(batch)  # type: ignore[arg-type]  # each takes its own kind
        if grounding is not None:
            assert isinstance(self.policy, Policy)  # a joint policy has no grounding head
            g_loss, g_metrics = self.policy.grounding_loss(grounding)
            loss = loss + g_loss
            metrics = {**metrics, **g_metrics, "loss": float(loss.detach())}
        return loss, metrics


def train_step(
    model: torch.nn.Module,
    batch: Batch | JointBatch,
    optimizer: torch.optim.Optimizer,
    *,
    lr: float,
    grad_clip: float,
    ema: EMA | None = None,
    ema_target: torch.nn.Module | None = None,
    grounding: GroundingBatch | None = None,
    amp: torch.dtype | None = None,
) -> dict[str, float]:
    """One optimizer step on `batch`; returns the loss, the policy's metrics and the LRs.

    Args:
        model: a module whose forward(batch) returns (loss, metrics) (`_LossModule` or its DDP wrapper).
        batch: the (already augmented) windows, on the model's device.
        optimizer: the optimizer; each group's learning rate is set to `lr` times its `lr_scale` first.
        lr: base learning rate of this step (`lr_at`).
        grad_clip: max global gradient norm (0 disables).
        ema: EMA to update after the step, tracking `ema_target`.
        ema_target: the unwrapped policy.
        grounding: labelled views for the grounding head, trained in the same step.
        amp: autocast dtype of the forward pass (torch.bfloat16), or None for fp32. The backward pass
            runs outside autocast, on fp32 weights; bf16 needs no loss scaling.
    """
    model.train()
    scaled = set_lr(optimizer, lr)
    with autocast(next(model.parameters()).device, amp):
        loss, metrics = model(batch, grounding)
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"training loss became {loss.item()}; lower the learning rate or check the data"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    out = {"loss": float(loss.detach()), **metrics, "lr": lr, **scaled}
    if grad_clip > 0:
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        out["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
    optimizer.step()
    if ema is not None and ema_target is not None:
        ema.update(ema_target)
    return out


# ------------------------------------------------------------------------------------------------ data
def batch_indices(step: int, *, n: int, batch_size: int, seed: int, weights: np.ndarray | None) -> np.ndarray:
    """The global batch of step `step`: int64 [batch_size] window indices, a pure function of its args."""
    rng = np.random.default_rng([seed, step, 1])
    return rng.choice(n, size=batch_size, replace=True, p=weights).astype(np.int64)


def _augmented(
    batch: Batch | JointBatch, data: TrainData, aug: AugmentConfig, *, seed: int, step: int, rank: int
) -> Batch | JointBatch:
    gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, step, 2, rank]).integers(2**62)))
    rng = np.random.default_rng([seed, step, 3, rank])
    if isinstance(batch, JointBatch):
        return JointBatch(
            {
                name: augment_batch(part, aug, generator=gen, paraphrase=data.paraphrases.get(name), rng=rng)
                for name, part in batch.parts.items()
            }
        )
    return augment_batch(batch, aug, generator=gen, paraphrase=data.paraphrase, rng=rng)


@torch.no_grad()
def validate(policy: Any, val: Any, *, batches: int, batch_size: int, seed: int) -> dict[str, float]:
    """Mean validation loss overall and per task family (fixed windows, no augmentation)."""
    policy.eval()
    rng = np.random.default_rng([seed, 7])
    # Sorted: a joint batch lists its windows robot by robot, and `family` must line up with `idx`.
    idx = np.sort(rng.permutation(len(val))[: batches * batch_size])
    totals: dict[str, list[float]] = {}
    state = torch.get_rng_state()  # keep training randomness independent of validation
    for chunk in np.array_split(idx, max(1, math.ceil(len(idx) / batch_size))):
        batch = val.get_batch(chunk).to(policy.device)
        loss, _ = policy.loss(batch)
        totals.setdefault("val_loss", []).append(float(loss))
        for fam in sorted(set(batch.family)):
            sel = [i for i, f in enumerate(batch.family) if f == fam]
            sub = val.get_batch(chunk[sel]).to(policy.device)
            totals.setdefault(f"val_loss/{fam or 'all'}", []).append(float(policy.loss(sub)[0]))
    torch.set_rng_state(state)
    return {k: float(np.mean(v)) for k, v in totals.items()}


def _apply_stage(policy: torch.nn.Module, base_trainable: dict[str, bool], frozen: tuple[str, ...]) -> None:
    for name, p in policy.named_parameters():
        p.requires_grad_(base_trainable[name] and name.split(".", 1)[0] not in frozen)


# ------------------------------------------------------------------------------------------------ loop
def _setup(
    cfg: TrainConfig, policy_cfg: PolicyConfig, *, rank: int, device: str
) -> tuple[TrainData, Policy, list[tuple[str, InstructionCheck]]]:
    """The run's data, its freshly built (or `init_from`) policy, and the instruction checks to save
    with each checkpoint (sub-directory, check)."""
    data = load_data(cfg, policy_cfg)
    if policy_cfg.language.kind == "vocab" and not policy_cfg.language.vocab:
        # The no-pretraining baseline's vocabulary comes from the data (and is saved in config.json).
        policy_cfg = policy_cfg.override({"language.vocab": build_vocab(data.reader.instructions)})
    assert data.reader.stats is not None and data.reader.embodiment is not None
    policy_cfg = fit_cameras(policy_cfg, data.reader.embodiment, cfg.policy_overrides)
    # Saved with every checkpoint: what the policy refuses before moving (vla.models.instruction_check).
    check = (
        InstructionCheck.fit(list(data.reader.instructions))
        if rank == 0 and policy_cfg.language.kind == "minilm"
        else None
    )
    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        policy = start_from(cfg.init_from, policy_cfg, embodiment=data.reader.embodiment, device=device)
    else:
        policy = build_policy(
            policy_cfg,
            embodiment=data.reader.embodiment,
            stats=data.reader.stats,
            features=data.reader.features,
            device=device,
        )
    return data, policy, [("", check)] if check is not None else []


def train(
    cfg: TrainConfig, *, resume: bool = False, device: str = "auto", progress: bool = True
) -> dict[str, Any]:
    """Trains a policy as `cfg` says; returns a summary (steps, wall time, last metrics, checkpoint path).

    Writes `<out>/checkpoint/` (deployable, EMA weights + stats), `<out>/train_state/` (for `resume`),
    `<out>/train_config.json`, `<out>/metrics.jsonl` and TensorBoard events in `<out>/tb/`.

    Args:
        cfg: the run's config.
        resume: continue the run in `cfg.out` from its `train_state/`.
        device: "auto", "cpu", "cuda" or "cuda:N" (`vla.train_device.resolve_placement`); under
            torchrun each rank takes `cuda:<LOCAL_RANK>`.
        progress: show a progress bar (on a terminal) or log a line every 5% of the steps.
    """
    check_module_names(cfg, PREFIXES)
    place = resolve_placement(device, cfg.amp)
    device = place.device
    if place.cuda_index is not None:
        torch.cuda.set_device(place.cuda_index)  # before the process group: nccl binds to it
    distributed = place.distributed
    rank, world = 0, 1
    if distributed:
        if not dist.is_initialized():
            dist.init_process_group(place.backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        if cfg.batch_size % world:
            raise ValueError(
                f"batch_size {cfg.batch_size} must be divisible by the {world} distributed ranks"
            )
    torch.set_num_threads(cfg.threads)
    if rank == 0:
        log.info("training on %s (autocast %s), %d process(es)", device, _amp_name(place), world)
    out = Path(cfg.out)
    policy_cfg = build_policy_config(cfg)
    check_grounding_config(cfg, policy_cfg)
    setup = setup_joint if cfg.joint_with else _setup
    data, policy, checks = setup(cfg, policy_cfg, rank=rank, device=device)
    base_trainable = {n: p.requires_grad for n, p in policy.named_parameters()}
    optimizer = make_optimizer(policy, cfg)
    ema = EMA(policy, cfg.ema_decay) if cfg.ema_decay > 0 else None
    counters = Counters()
    state_dir = out / "train_state"
    if resume:
        cfg_file = out / "train_config.json"
        saved = json.loads(cfg_file.read_text()) if cfg_file.exists() else None
        now = json.loads(json.dumps(to_dict(cfg)))
        if saved is not None:
            # How long to run may change: a run stopped by its time budget (which counts the time
            # already spent) continues only with a larger one.
            free = ("steps", "time_budget_s")
            diff = sorted(k for k in set(saved) | set(now) if k not in free and saved.get(k) != now.get(k))
            if diff:
                raise ValueError(
                    f"{out}: --resume with a config that differs from train_config.json in {diff}"
                )
        counters = load_state(state_dir, model=policy, ema=ema.shadow if ema else None, optimizer=optimizer)
    elif state_dir.exists() and rank == 0:
        raise FileExistsError(
            f"{out} already holds a training run; pass --resume to continue it or choose --out"
        )
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(to_dict(cfg), indent=1))
    model: torch.nn.Module = _LossModule(policy)
    if distributed:
        # Staged freezing changes which parameters get gradients mid-run, which DDP must be told about.
        model = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=None if place.cuda_index is None else [place.cuda_index],
            find_unused_parameters=bool(cfg.stages),
        )
    aug = AugmentConfig(p_paraphrase=cfg.paraphrase_prob) if cfg.augment else AugmentConfig.none()
    if policy_cfg.vision.random_shift > 0:
        aug = replace(aug, p_shift=0.0)  # the model shifts its own inputs while training; never twice
    writer = _tensorboard(out / "tb") if rank == 0 else None
    metrics_file = open(out / "metrics.jsonl", "a") if rank == 0 else None  # noqa: SIM115
    # A live bar on a terminal; in logs (CI, nohup) a plain line every `log_every` steps instead.
    interactive = progress and rank == 0 and sys.stderr.isatty()
    bar = tqdm(total=cfg.steps, initial=counters.step, disable=not interactive, dynamic_ncols=True)
    log_every = max(1, cfg.steps // 20)
    last: dict[str, float] = {}
    session_start, start_step, elapsed_before = time.perf_counter(), counters.step, counters.elapsed_s
    stop_reason = "steps"
    try:
        while counters.step < cfg.steps:
            step = counters.step
            _apply_stage(policy, base_trainable, cfg.frozen_prefixes(step))
            idx = batch_indices(
                step, n=len(data.train), batch_size=cfg.batch_size, seed=cfg.seed, weights=data.weights
            )
            batch = data.train.get_batch(idx[rank::world])
            batch = _augmented(batch, data, aug, seed=cfg.seed, step=step, rank=rank).to(device)
            g_batch = None
            if data.grounding is not None:
                g_idx = grounding_indices(
                    step, n=len(data.grounding), batch_size=cfg.grounding_batch * world, seed=cfg.seed
                )
                g_batch = data.grounding.get_batch(g_idx[rank::world])
            last = train_step(
                model,
                batch,
                optimizer,
                lr=lr_at(step, cfg),
                grad_clip=cfg.grad_clip,
                ema=ema,
                ema_target=policy,
                grounding=g_batch,
                amp=place.amp_dtype,
            )
            counters.step += 1
            session_s = time.perf_counter() - session_start
            elapsed = elapsed_before + session_s
            last["samples_per_s"] = cfg.batch_size * (counters.step - start_step) / max(1e-9, session_s)
            bar.set_postfix(
                loss=f"{last['loss']:.4f}", lr=f"{last['lr']:.1e}", sps=f"{last['samples_per_s']:.0f}"
            )
            bar.update(1)
            if progress and rank == 0 and not interactive and counters.step % log_every == 0:
                log.info(
                    "step %d/%d loss %.4f lr %.1e %.0f samples/s",
                    counters.step,
                    cfg.steps,
                    last["loss"],
                    last["lr"],
                    last["samples_per_s"],
                )
            if data.val is not None and cfg.val_every and counters.step % cfg.val_every == 0:
                with ema.applied(policy) if ema else _nothing():
                    val = validate(
                        policy, data.val, batches=cfg.val_batches, batch_size=cfg.batch_size, seed=cfg.seed
                    )
                last.update(val)
                if val["val_loss"] < counters.best_val - 1e-6:
                    counters.best_val, counters.bad_evals = val["val_loss"], 0
                else:
                    counters.bad_evals += 1
            if rank == 0:
                _log(metrics_file, writer, counters.step, last)
            over_time = cfg.time_budget_s > 0 and elapsed >= cfg.time_budget_s
            patience_out = cfg.early_stop_patience > 0 and counters.bad_evals >= cfg.early_stop_patience
            done = counters.step >= cfg.steps or over_time or patience_out
            if rank == 0 and (done or (cfg.save_every and counters.step % cfg.save_every == 0)):
                counters.elapsed_s = elapsed
                _save(
                    out,
                    policy,
                    ema,
                    optimizer,
                    counters,
                    cfg,
                    families=data.train.family_names,
                    checks=checks,
                )
            if over_time or patience_out:
                stop_reason = "time budget" if over_time else "early stopping"
                break
    finally:
        bar.close()
        if metrics_file:
            metrics_file.close()
        if writer:
            writer.close()
        data.close()
        if distributed:
            dist.barrier()
    return {
        "steps": counters.step,
        "stop_reason": stop_reason,
        "elapsed_s": counters.elapsed_s,
        "checkpoint": str(out / "checkpoint"),
        "metrics": last,
        "params": policy.num_params(),
        "device": device,
        "amp": _amp_name(place),
    }


def _save(
    out: Path,
    policy: Policy | JointPolicy,
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    counters: Counters,
    cfg: TrainConfig,
    *,
    families: list[str],
    checks: Sequence[tuple[str, InstructionCheck]] = (),
) -> None:
    # `families` lets `vla eval` default to what the policy was trained on.
    metadata = {
        "train": {
            "dataset": str(cfg.dataset),
            "preset": cfg.preset,
            "step": counters.step,
            "seed": cfg.seed,
            "families": families,
        }
    }
    tmp = out / "checkpoint.tmp"
    _rmtree(tmp)
    with ema.applied(policy) if ema else _nothing():
        policy.save_pretrained(tmp, metadata=metadata)
    for sub, check in checks:
        check.save(tmp / sub)
    final = out / "checkpoint"
    if final.exists():
        old = out / "checkpoint.old"
        os.replace(final, old)
        os.replace(tmp, final)
        _rmtree(old)
    else:
        os.replace(tmp, final)
    save_state(
        out / "train_state",
        model=policy,
        ema=ema.shadow if ema else None,
        optimizer=optimizer,
        counters=counters,
    )


def _amp_name(place: Placement) -> str:
    return "bf16" if place.amp_dtype == torch.bfloat16 else "off"


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the JSONL file has the same numbers
        return None
    return SummaryWriter(str(path))


def _log(file: Any, writer: Any, step: int, metrics: dict[str, float]) -> None:
    if file is not None:
        file.write(json.dumps({"step": step, **metrics}) + "\n")
    if writer is not None:
        for k, v in metrics.items():
            writer.add_scalar(k, v, step)
