"""The per-call part of a policy as one module with plain tensor inputs, and the input preparation
every engine backend shares (eager, compiled, int8 and ONNX run exactly the same pre/post-processing).

Inputs (numpy "feeds", also the ONNX graph's inputs):
    image_<cam>   uint8   [B, T, Hi, Wi, 3]   raw camera images
    state         float32 [B, T, S]           robot units (standardized inside the core)
    lang_sentence float32 [B, Dl]             instruction embedding
    lang_tokens   float32 [B, L, Dl]          per-token embeddings, zero-padded
    lang_mask     bool    [B, L]              True for real tokens
    feature_<f>   float32 [B, D]              per feature the policy estimates (`Policy.estimates`): the
                                              value its token is built from (`Observation.features[f]`
                                              when held, else `Policy.estimate` on this frame, eagerly)
Outputs: actions float32 [B, H, A] in robot units, and confidence float32 [B] when the head has one.

Why not call `Policy.predict` per step: it validates, converts and flips train/eval mode on every call
(the mode flip alone visits every submodule twice); an engine knows its policy stays in eval mode and
that the instruction repeats, so it prepares inputs once per call and caches instruction embeddings.
`PolicyCore` runs `Policy.fuse` (shared with `Policy.predict`) + `head.sample` + `normalizer.unaction`; the
engine tests compare it with `Policy.predict` bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vla.models.checks import validate_observation
from vla.models.language import LanguageOut
from vla.models.policy import Policy, fit_history
from vla.types import ActionChunk, Observation

LANG_INPUTS = ("lang_sentence", "lang_tokens", "lang_mask")


def input_names(policy: Policy) -> list[str]:
    """Names of the core's inputs, in positional order (estimated features last)."""
    names = [f"image_{c}" for c in policy.config.cameras] + ["state", *LANG_INPUTS]
    return names + [feature_input(f) for f in policy.estimates]


def feature_input(name: str) -> str:
    """The core input that carries feature `name`."""
    return f"feature_{name}"


class PolicyCore(nn.Module):
    """Vision + state + fusion + head + un-normalization of `policy`, on tensors (see module docstring)."""

    def __init__(self, policy: Policy, *, with_confidence: bool = False) -> None:
        super().__init__()
        self.policy = policy
        self.cameras = tuple(policy.config.cameras)
        self.with_confidence = with_confidence

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        v = len(self.cameras)
        images = dict(zip(self.cameras, inputs[:v], strict=True))  # camera -> (B, T, Hi, Wi, 3) uint8
        state, sentence, tokens, mask = inputs[v : v + 4]
        p = self.policy
        lang = LanguageOut(sentence, tokens, mask)
        vis = p.vision(images, lang.sentence) if p.reads_vision else None
        # (B, D): the held (or this frame's) estimate of the grounding feature, for a grounding policy
        scene = inputs[v + 4] if p.estimates else None
        fused = p.fuse(lang, vis, state, scene)
        norm, conf = p.head.sample(fused, with_confidence=self.with_confidence)  # (B, H, A), (B,) | None
        actions = p.normalizer.unaction(norm)  # (B, H, A) robot units
        return (actions,) if conf is None else (actions, conf)


class InputBuilder:
    """Turns an `Observation` into the core's numpy feeds; caches instruction embeddings per string.

    Args:
        policy: the policy whose config, state size and instruction encoder are used.
        image_size: when set, images must have exactly this (Hi, Wi) (graphs traced at a fixed size).
    """

    def __init__(self, policy: Policy, *, image_size: tuple[int, int] | None = None) -> None:
        self.policy = policy
        self.config = policy.config
        self.image_size = image_size
        self._lang: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def language(self, texts: list[str]) -> dict[str, np.ndarray]:
        """lang_sentence [B, Dl], lang_tokens [B, L, Dl], lang_mask [B, L] for B instructions."""
        missing = sorted({t for t in texts if t not in self._lang})
        if missing:
            with torch.inference_mode():
                lang = self.policy.language(missing, torch.device("cpu"))
            for i, t in enumerate(missing):
                n = int(lang.mask[i].sum())
                self._lang[t] = (
                    lang.sentence[i].float().numpy().copy(),
                    lang.tokens[i, :n].float().numpy().copy(),
                )
        entries = [self._lang[t] for t in texts]
        length = max(e[1].shape[0] for e in entries)
        tokens = np.zeros((len(texts), length, entries[0][1].shape[1]), np.float32)  # (B, L, Dl)
        mask = np.zeros((len(texts), length), bool)  # (B, L)
        for i, (_, tok) in enumerate(entries):
            tokens[i, : len(tok)] = tok
            mask[i, : len(tok)] = True
        sentence = np.stack([e[0] for e in entries]).astype(np.float32)  # (B, Dl)
        return {"lang_sentence": sentence, "lang_tokens": tokens, "lang_mask": mask}

    def __call__(self, obs: Observation) -> dict[str, np.ndarray]:
        """Validates `obs` (single step or batched) and returns the feeds."""
        cfg = self.config
        b = validate_observation(obs, cfg, self.policy.state_dim)
        T = cfg.obs_horizon
        feeds: dict[str, np.ndarray] = {}
        for c in cfg.cameras:
            img = fit_history(np.asarray(b.images[c]), T)
            if self.image_size is not None and tuple(img.shape[2:4]) != tuple(self.image_size):
                raise ValueError(
                    f"this backend takes images at config.image_size {tuple(self.image_size)}, camera '{c}' "
                    f"has {tuple(img.shape[2:4])}; resize first or use the eager backend"
                )
            feeds[f"image_{c}"] = np.ascontiguousarray(img)
        feeds["state"] = np.ascontiguousarray(fit_history(np.asarray(b.state, np.float32), T))
        instr = [b.instruction] if isinstance(b.instruction, str) else list(b.instruction)
        feeds.update(self.language(instr))
        missing = [f for f in self.policy.estimates if f not in b.features]
        estimated = self.policy.estimate(b) if missing else {}
        for name in self.policy.estimates:
            # The value the feature's token is built from: the caller's held estimate, or this frame's.
            value = b.features[name] if name in b.features else estimated[name]
            feeds[feature_input(name)] = np.ascontiguousarray(value, dtype=np.float32)  # (B, D)
        return feeds


def to_chunk(outputs: list[np.ndarray] | tuple[np.ndarray, ...]) -> ActionChunk:
    """Core outputs (actions[, confidence]) -> ActionChunk."""
    actions = np.asarray(outputs[0], dtype=np.float32)
    conf = np.asarray(outputs[1], dtype=np.float32) if len(outputs) > 1 else None
    return ActionChunk(actions=actions, confidence=conf)


class TorchRunner:
    """Runs a (possibly compiled or quantized) `PolicyCore` on numpy feeds under inference mode."""

    def __init__(self, core: nn.Module, names: list[str]) -> None:
        self.core = core.eval()
        self.names = names

    def __call__(self, feeds: dict[str, np.ndarray]) -> ActionChunk:
        with torch.inference_mode():
            # from_numpy shares memory; read-only arrays (e.g. decoded frames) are copied first.
            out = self.core(*(torch.from_numpy(_writable(feeds[n])) for n in self.names))
        return to_chunk([o.float().numpy() for o in out])


def _writable(a: np.ndarray) -> np.ndarray:
    return a if a.flags.writeable else a.copy()
