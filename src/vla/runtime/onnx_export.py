"""ONNX export of a policy, and an onnxruntime runner that behaves like `Policy.predict`.

Graph (decided here, documented in docs/runtime.md):
    inputs   image_<cam>   uint8   [B, T, Hi, Wi, 3]   raw camera images at config.image_size
             state         float32 [B, T, S]           robot units (standardized inside the graph)
             lang_sentence float32 [B, Dl]             instruction embedding (from the policy's encoder)
             lang_tokens   float32 [B, L, Dl]          per-token embeddings (L dynamic)
             lang_mask     bool    [B, L]              True for real tokens
    outputs  actions       float32 [B, H, A]           robot units (un-normalized inside the graph)
             confidence    float32 [B]                 when the head provides one
The graph takes raw robot units so a deployment cannot apply the wrong statistics: they are constants
in the graph, copied from the checkpoint's stats.json. The instruction encoder is not in the graph (its
tokenizer is Python); `OnnxRunner` computes and caches the embedding per instruction string.
Only deterministic heads (regression, binned) are exported: diffusion / flow sample from noise inside
their loop, so their outputs could not be checked against PyTorch; serve those with eager/compile/int8.
Inputs the network does not use (e.g. lang_tokens when it reads the sentence only) are dropped from
the graph by the exporter; the runner feeds whichever inputs the graph declares.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vla.models.language import LanguageOut
from vla.models.policy import Policy, validate_observation
from vla.types import ActionChunk, Observation

EXPORTABLE_HEADS = ("regression", "binned")
OPSET = 17
# Float32 differences between PyTorch and onnxruntime kernels, in robot units (tested).
ATOL = 1e-4


class _Core(nn.Module):
    """The per-call part of `Policy.predict` with language embeddings as inputs.

    Mirrors `Policy._encode` + `head.sample` + `normalizer.unaction`; the engine tests compare the two
    on every backend, so a change in the policy that is not mirrored here fails loudly.
    """

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy
        self.cameras = tuple(policy.config.cameras)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        v = len(self.cameras)
        images = dict(zip(self.cameras, inputs[:v], strict=True))  # camera -> (B, T, Hi, Wi, 3) uint8
        state, sentence, tokens, mask = inputs[v:]
        p = self.policy
        lang = LanguageOut(sentence, tokens, mask)
        vis = p.vision(images, lang.sentence)
        st = p.state(p.normalizer.state(state))  # (B, 1, D)
        fused = p.fusion(lang, st, vis)
        norm, conf = p.head.sample(fused)  # (B, H, A) normalized, (B,) or None
        actions = p.normalizer.unaction(norm)  # (B, H, A) robot units
        return (actions,) if conf is None else (actions, conf)


def _example_inputs(policy: Policy, batch: int = 1) -> tuple[list[str], tuple[torch.Tensor, ...]]:
    cfg = policy.config
    hi, wi = cfg.image_size
    images = [torch.zeros(batch, cfg.obs_horizon, hi, wi, 3, dtype=torch.uint8) for _ in cfg.cameras]
    state = torch.zeros(batch, cfg.obs_horizon, policy.state_dim)
    lang = policy.language(["pick up the red block"] * batch, torch.device("cpu"))
    names = [f"image_{c}" for c in cfg.cameras] + ["state", "lang_sentence", "lang_tokens", "lang_mask"]
    return names, (*images, state, lang.sentence.clone(), lang.tokens.clone(), lang.mask.clone())


def export_onnx(policy: Policy, path: str | Path, *, opset: int = OPSET) -> Path:
    """Exports `policy` to an ONNX file (see the module docstring for the graph's inputs/outputs).

    Raises:
        ValueError: the policy's head samples from noise (diffusion, flow).
    """
    kind = policy.config.head.kind
    if kind not in EXPORTABLE_HEADS:
        raise ValueError(
            f"ONNX export covers deterministic heads {EXPORTABLE_HEADS}; head.kind='{kind}' samples from "
            "noise inside its loop. Use the eager, compile or int8 backend for this policy."
        )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    core = _Core(policy).eval()
    names, example = _example_inputs(policy)
    with torch.inference_mode():
        n_out = len(core(*example))
    outputs = ["actions", "confidence"][:n_out]
    dynamic: dict[str, dict[int, str]] = {n: {0: "batch"} for n in names + outputs}
    dynamic["lang_tokens"] = {0: "batch", 1: "tokens"}
    dynamic["lang_mask"] = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on fixed shapes
        torch.onnx.export(
            core,
            example,
            str(out),
            input_names=names,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )
    return out


class OnnxRunner:
    """Runs an exported graph with onnxruntime; `predict(Observation) -> ActionChunk` like the policy.

    Args:
        policy: the policy the graph came from (its instruction encoder and config are used).
        path: the .onnx file.
        num_threads: onnxruntime intra-op threads.
    """

    def __init__(self, policy: Policy, path: str | Path, *, num_threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Same reason as the engine's OMP_WAIT_POLICY: no spinning threads on a shared CPU.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.policy = policy
        self.config = policy.config
        self._lang_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _language(self, texts: list[str]) -> dict[str, np.ndarray]:
        missing = sorted({t for t in texts if t not in self._lang_cache})
        if missing:
            with torch.inference_mode():
                lang = self.policy.language(missing, torch.device("cpu"))
            for i, t in enumerate(missing):
                n = int(lang.mask[i].sum())
                self._lang_cache[t] = (lang.sentence[i].numpy().copy(), lang.tokens[i, :n].numpy().copy())
        entries = [self._lang_cache[t] for t in texts]
        length = max(e[1].shape[0] for e in entries)
        dim = entries[0][1].shape[1]
        tokens = np.zeros((len(texts), length, dim), np.float32)  # (B, L, Dl)
        mask = np.zeros((len(texts), length), bool)  # (B, L)
        for i, (_, tok) in enumerate(entries):
            tokens[i, : len(tok)] = tok
            mask[i, : len(tok)] = True
        sentence = np.stack([e[0] for e in entries]).astype(np.float32)  # (B, Dl)
        return {"lang_sentence": sentence, "lang_tokens": tokens, "lang_mask": mask}

    def predict(self, obs: Observation) -> ActionChunk:
        """Same contract as `Policy.predict` (robot units in and out); images must be config.image_size."""
        cfg = self.config
        b = validate_observation(obs, cfg, self.policy.state_dim)
        T = cfg.obs_horizon
        feeds: dict[str, np.ndarray] = {}
        for c in cfg.cameras:
            img = _fit_history(np.asarray(b.images[c]), T)
            if tuple(img.shape[2:4]) != tuple(cfg.image_size):
                raise ValueError(
                    f"ONNX backend takes images at config.image_size {tuple(cfg.image_size)}, camera '{c}' "
                    f"has {tuple(img.shape[2:4])}; resize first or use the eager backend"
                )
            feeds[f"image_{c}"] = np.ascontiguousarray(img)
        feeds["state"] = np.ascontiguousarray(_fit_history(np.asarray(b.state, np.float32), T))
        instr = [b.instruction] if isinstance(b.instruction, str) else list(b.instruction)
        feeds.update(self._language(instr))
        result = self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})
        out = dict(zip(self.output_names, result, strict=True))
        conf = out.get("confidence")
        return ActionChunk(
            actions=np.asarray(out["actions"], np.float32),
            confidence=None if conf is None else np.asarray(conf, np.float32),
        )


def _fit_history(x: np.ndarray, T: int) -> np.ndarray:
    """(B, t, ...) -> (B, T, ...): the last T frames, or the first frame repeated in front."""
    t = x.shape[1]
    if t >= T:
        return x[:, t - T :]
    return np.concatenate([np.repeat(x[:, :1], T - t, axis=1), x], axis=1)
