"""MC-dropout confidence (Gal & Ghahramani 2016) for policies whose head has none of its own.

`MCDropout(policy_or_engine, MCDropoutConfig(samples=8))` looks like a policy (`predict(obs) ->
ActionChunk`, every other attribute passed through), so the safety filter's `min_confidence`, the
controllers and the server use it unchanged. Per call it runs

1. one ordinary pass (dropout off): the returned actions are exactly the wrapped policy's;
2. `samples` stochastic passes in one batch (every observation repeated `samples` times), with only the
   fusion's dropout modules in train mode (`fusion.dropout`, the "MC-dropout source" of FusionConfig;
   everything else, e.g. normalization statistics and the frozen text encoder, stays in eval mode);

and maps the spread of the stochastic chunks to a confidence in (0, 1]:

    spread     = mean over steps and action dims of the std over the samples, in normalized action
                 units (the policy's q01..q99 range of every dimension mapped to [-1, 1])
    confidence = exp(-spread / scale),   scale = 0.1 by default

Why this mapping: it is `vla.models.heads.base.spread_confidence`, the function the regression
ensemble and the sampling heads (diffusion, flow) already use, with the same scale, so a
`min_confidence` threshold means the same whichever source the confidence comes from. Normalized
units make every action dimension count alike (metres and radians and gripper fractions would not);
the exponential maps no disagreement to 1, decays smoothly and never leaves (0, 1]; at a spread of a
tenth of the normalized range the confidence is 1/e ≈ 0.37. The actions stay the deterministic pass's
rather than the sample mean, so wrapping a policy changes only its confidence, never what it does
(and a mean of binary gripper commands would not be a valid command).

Cost: one extra model call of `samples` times the batch per call. Only PyTorch's eager path can switch
dropout on: an Engine must use the "eager" backend (compiled, int8 and ONNX graphs run with dropout off).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from vla.models.config import PolicyConfig
from vla.models.heads.base import CONFIDENCE_SCALE
from vla.models.layers import Attention
from vla.models.policy import Policy
from vla.types import ActionChunk, Observation

SAMPLING_HEADS = ("diffusion", "flow")


@dataclass(frozen=True)
class MCDropoutConfig:
    """How MC-dropout estimates a confidence.

    Attributes:
        samples: stochastic passes per call (their spread gives the confidence); at least 2.
        scale: spread (normalized action units) at which the confidence is 1/e.
        seed: seeds the dropout masks of every call (the same observation then always gets the same
            confidence; torch's global RNG is left untouched); None draws fresh masks from it.
    """

    samples: int = 8
    scale: float = CONFIDENCE_SCALE
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.samples <= 256:
            raise ValueError(f"MC-dropout samples must be in [2, 256], got {self.samples}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"MC-dropout scale must be a positive number, got {self.scale}")


def dropout_modules(policy: Policy) -> list[nn.Module]:
    """The fusion's modules that drop out in train mode (nn.Dropout and attention with p > 0)."""
    mods: list[nn.Module] = []
    for m in policy.fusion.modules():
        if (isinstance(m, nn.Dropout) and m.p > 0) or (isinstance(m, Attention) and m.dropout > 0):
            mods.append(m)
    return mods


def _torch_policy(model: Any) -> Policy:
    if isinstance(model, Policy):
        return model
    inner = getattr(model, "policy", None)
    backend = getattr(model, "backend", None)
    if isinstance(inner, Policy) and backend is not None:  # an Engine
        if backend != "eager":
            raise ValueError(
                f"MC-dropout needs the eager engine backend, got '{backend}': compiled, int8 and ONNX "
                "graphs run with dropout switched off (use --backend eager)"
            )
        return inner
    raise TypeError(f"MC-dropout wraps a vla Policy or an eager Engine, got {type(model).__name__}")


def _repeat(obs: Observation, k: int) -> Observation:
    """A batched observation (B rows) -> K*B rows, row k*B + b a copy of row b."""
    return Observation(
        images={c: np.concatenate([v] * k) for c, v in obs.images.items()},
        state=np.concatenate([obs.state] * k),
        instruction=list(obs.instruction) * k,
        features={n: np.concatenate([np.asarray(v)] * k) for n, v in obs.features.items()},
    )


class MCDropout:
    """A policy wrapper whose chunks carry an MC-dropout confidence (see the module docstring).

    Args:
        model: a `Policy` or an `Engine` with the eager backend (put in eval mode).
        config: samples, scale, seed.

    Raises:
        ValueError: the policy has no dropout in its fusion (`fusion.dropout=0`), or the engine backend
            cannot run dropout.
    """

    def __init__(self, model: Any, config: MCDropoutConfig | None = None) -> None:
        self.model = model
        self.mc_config = config or MCDropoutConfig()
        self.torch_policy = _torch_policy(model)
        self._dropout = dropout_modules(self.torch_policy)
        if not self._dropout:
            cfg = self.torch_policy.config
            raise ValueError(
                f"MC-dropout needs dropout in the fusion, but policy '{cfg.name}' has fusion.dropout="
                f"{cfg.fusion.dropout}: train it with -p fusion.dropout=0.1, or use a head with its own "
                "confidence (head.kind=binned, or regression with head.ensemble > 1)"
            )
        self.torch_policy.eval()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # Everything but predict is the wrapped model's (config, embodiment, spec, ground, ...).
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    @contextmanager
    def _dropout_on(self) -> Iterator[None]:
        policy = self.torch_policy
        if policy.training:
            policy.eval()  # Policy.predict would otherwise switch every module to eval for the call
        for m in self._dropout:
            m.train()
        try:
            if self.mc_config.seed is None:
                yield
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.mc_config.seed)
                    yield
        finally:
            for m in self._dropout:
                m.eval()

    def spread(self, obs: Observation) -> np.ndarray:
        """The stochastic passes' spread float64 [B] in normalized action units (see the docstring)."""
        batch = obs.as_batch()
        b, k = batch.state.shape[0], self.mc_config.samples
        with self._dropout_on():
            samples = np.asarray(self.model.predict(_repeat(batch, k)).actions)  # (K*B, H, A)
        with torch.inference_mode():
            norm = self.torch_policy.normalizer.action(torch.from_numpy(samples.astype(np.float32)))
        norm = norm.view(k, b, *norm.shape[1:]).double()  # (K, B, H, A)
        return norm.std(dim=0).mean(dim=(1, 2)).numpy()

    def predict(self, obs: Observation) -> ActionChunk:
        """The wrapped policy's chunk, with `confidence` float32 [B] from MC-dropout and the spread in
        `info["mc_dropout_spread"]`."""
        with self._lock:
            chunk = self.model.predict(obs)
            spread = self.spread(obs)
        conf = np.exp(-spread / self.mc_config.scale).astype(np.float32)
        info = {**chunk.info, "mc_dropout_spread": spread}
        return replace(chunk, confidence=conf, info=info)


@dataclass(frozen=True)
class ConfidencePlan:
    """Where a served policy's confidence comes from (`confidence_plan`).

    Attributes:
        source: "head" (binned, regression ensemble), "sampling" (diffusion/flow samples) or "mc_dropout".
        with_confidence: the engine must ask a sampling head for its confidence.
        mc_dropout: wrap the engine in `MCDropout`.
    """

    source: str
    with_confidence: bool = False
    mc_dropout: bool = False


def confidence_plan(config: PolicyConfig, *, backend: str, mc_dropout: bool = False) -> ConfidencePlan:
    """How to give a policy's chunks a confidence (for `min_confidence`), or a clear refusal.

    Args:
        config: the checkpoint's PolicyConfig.
        backend: the engine backend it will run on.
        mc_dropout: use MC-dropout even when the head has a confidence of its own.

    Raises:
        ValueError: no confidence is possible; the message names the head and what to do.
    """
    head = config.head
    can_mc = config.fusion.dropout > 0
    native = head.kind in ("binned", *SAMPLING_HEADS) or (head.kind == "regression" and head.ensemble > 1)
    if mc_dropout or not native:
        what = f"the {head.kind} head" + (" with head.ensemble=1" if head.kind == "regression" else "")
        if not can_mc:
            raise ValueError(
                f"a confidence is needed (--min-confidence / --mc-dropout) but {what} gives none and "
                f"fusion.dropout=0 leaves nothing for MC-dropout: retrain with -p head.ensemble=3 or "
                "-p fusion.dropout=0.1, or serve without --min-confidence"
            )
        if backend != "eager":
            raise ValueError(
                f"{what} gets its confidence from MC-dropout, which needs --backend eager "
                f"(the {backend} backend runs with dropout switched off)"
            )
        return ConfidencePlan("mc_dropout", mc_dropout=True)
    if head.kind in SAMPLING_HEADS:
        return ConfidencePlan("sampling", with_confidence=True)
    return ConfidencePlan("head")
