"""ONNX export of a policy, and an onnxruntime runner for the engine's "onnx" backend.

The graph is `vla.runtime.core.PolicyCore` (inputs and outputs listed there): it takes raw robot units
and returns robot units, with the checkpoint's normalization statistics as constants inside, so a
deployment cannot pair the weights with the wrong statistics. The instruction encoder is not in the
graph (its tokenizer is Python): the cached instruction embedding is an input. Batch size and token
count are dynamic; images are fixed at `config.image_size` (the size the graph was traced at).
Only deterministic heads (regression, binned) are exported: diffusion / flow draw noise inside their
sampling loop, so their outputs could not be checked against PyTorch; run those with eager/compile/int8.
The file records sha256 fingerprints of the policy's config, normalization statistics and weights
(ONNX metadata_props); the engine refuses a graph whose fingerprints differ from its checkpoint, so a
stale or foreign .onnx file cannot be paired with another checkpoint's statistics.
Inputs the network does not read (lang_tokens/lang_mask when the fusion uses the sentence only) are
pruned from the graph by the exporter; the runner feeds whichever inputs the graph declares.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from vla.features import find_feature
from vla.models.policy import Policy
from vla.runtime.core import InputBuilder, PolicyCore, feature_input, input_names, to_chunk
from vla.types import ActionChunk

EXPORTABLE_HEADS = ("regression", "binned")
OPSET = 17
# Largest difference between PyTorch and onnxruntime float32 kernels, in robot units (tested).
ATOL = 1e-4


def example_feeds(policy: Policy, batch: int = 1) -> dict[str, np.ndarray]:
    """Zero images and state plus a real instruction embedding, for tracing and checks."""
    cfg = policy.config
    hi, wi = cfg.image_size
    builder = InputBuilder(policy)
    feeds = {f"image_{c}": np.zeros((batch, cfg.obs_horizon, hi, wi, 3), np.uint8) for c in cfg.cameras}
    feeds["state"] = np.zeros((batch, cfg.obs_horizon, policy.state_dim), np.float32)
    feeds.update(builder.language(["pick up the red block"] * batch))
    for name in policy.estimates:
        size = find_feature(policy.features, name, where="the policy").size
        feeds[feature_input(name)] = np.zeros((batch, size), np.float32)
    return feeds


def fingerprint(policy: Policy) -> dict[str, str]:
    """sha256 of the policy's config, statistics (canonical JSON) and weights (tensor bytes by name)."""

    def of_json(d: object) -> str:
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    weights = hashlib.sha256()
    for name, tensor in sorted(policy.state_dict().items()):
        weights.update(name.encode())
        weights.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return {
        "vla_config_sha256": of_json(policy.config.to_dict()),
        "vla_stats_sha256": of_json(policy.stats.to_dict()),
        "vla_weights_sha256": weights.hexdigest(),
    }


def export_onnx(policy: Policy, path: str | Path, *, opset: int = OPSET) -> Path:
    """Exports `policy` to an ONNX file (inputs/outputs: see `vla.runtime.core`).

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
    core = PolicyCore(policy).eval()
    names = input_names(policy)
    feeds = example_feeds(policy)
    example = tuple(torch.from_numpy(feeds[n]) for n in names)
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
    model = onnx.load(str(out))
    for key, value in fingerprint(policy).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(out))
    return out


class OnnxRunner:
    """An onnxruntime session over numpy feeds: `runner(feeds) -> ActionChunk`.

    Args:
        path: the .onnx file.
        num_threads: intra-op threads (1 by default, for the same reason as the engine's).
    """

    def __init__(self, path: str | Path, *, num_threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # No spinning worker threads on a shared CPU (docs/platform.md#threads).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, feeds: dict[str, np.ndarray]) -> ActionChunk:
        result = self.session.run(None, {n: feeds[n] for n in self.input_names})
        return to_chunk([np.asarray(r) for r in result])
