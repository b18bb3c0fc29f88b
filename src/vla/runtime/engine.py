"""Inference engine: a checkpoint directory in, fast `predict(Observation) -> ActionChunk` out.

Backends (`EngineConfig.backend`):
    "eager"    the policy as trained, under `torch.inference_mode`.
    "compile"  vision/state/fusion/head wrapped by `torch.compile` (inductor by default; first calls
               compile, so warm up before measuring).
    "int8"     dynamic int8 quantization of every nn.Linear (`torch.ao.quantization.quantize_dynamic`):
               weights int8, activations quantized on the fly. Convolutions stay float.
    "onnx"     the graph exported by `vla.runtime.onnx_export`, run by onnxruntime.
All backends take and return robot units: normalization lives in the model (or in the ONNX graph), with
the statistics from the checkpoint. The instruction encoder (MiniLM) stays in PyTorch for every backend;
its output is cached per instruction string, so a repeated instruction costs a dict lookup.

Threads: on a shared CPU, busy-waiting OpenMP workers next to another job slow a policy many times
over (docs/platform.md#threads). The engine therefore uses 1 intra-op thread by default (configurable) and, if torch has not
been imported yet, sets OMP_WAIT_POLICY=PASSIVE before importing it (libgomp reads it once at start-up).
`torch.set_num_threads` is process-wide, so the last engine built decides.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Must precede the first torch import to take effect; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch

from vla.models.policy import Policy
from vla.runtime.core import InputBuilder, PolicyCore, TorchRunner, input_names
from vla.runtime.schema import PolicySpec
from vla.types import ActionChunk, Observation

logger = logging.getLogger(__name__)

BACKENDS = ("eager", "compile", "int8", "onnx")


@dataclass(frozen=True)
class EngineConfig:
    """How an Engine runs its policy.

    Attributes:
        backend: "eager", "compile", "int8" or "onnx".
        num_threads: intra-op threads for torch / onnxruntime (1 is lowest-latency on a shared machine).
        compile_backend: torch.compile backend for "compile" ("inductor"; "aot_eager" compiles fast, for tests).
        onnx_path: an exported .onnx file for "onnx" (None: export the checkpoint to a temporary file).
        with_confidence: ask sampling heads (diffusion/flow) for a confidence (draws extra samples).
    """

    backend: str = "eager"
    num_threads: int = 1
    compile_backend: str = "inductor"
    onnx_path: str | None = None
    with_confidence: bool = False

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown engine backend '{self.backend}'; expected one of {BACKENDS}")
        if not 1 <= self.num_threads <= 256:
            raise ValueError(f"num_threads must be in [1, 256], got {self.num_threads}")


def configure_threads(num_threads: int) -> None:
    """Sets torch's intra-op threads (process-wide) and one inter-op thread when still possible."""
    torch.set_num_threads(num_threads)
    # Only settable before the first parallel op; later engines keep the first value.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    if num_threads > 1 and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        logger.warning(
            "num_threads=%d without OMP_WAIT_POLICY=PASSIVE: spinning OpenMP threads can slow inference "
            "many times over when another process shares the cores",
            num_threads,
        )


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (the stats hash servers announce, so clients can check normalization)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# The parts of a policy that run per call; the language encoder is cached per instruction instead.
CORE = ("vision", "state", "fusion", "head")


def _with_core(policy: Policy, transform: Callable[[torch.nn.Module], torch.nn.Module]) -> Policy:
    """A shallow copy of `policy` whose core submodules are `transform(deepcopy(submodule))`.

    Shallow so that the frozen MiniLM (90 MB, held outside the module tree) and its cache are shared.
    """
    clone = copy.copy(policy)
    clone._modules = dict(policy._modules)  # the copy must not write into the original's module table
    for name in CORE:
        setattr(clone, name, transform(copy.deepcopy(getattr(policy, name)).eval()))
    return clone


def quantize_int8(policy: Policy) -> Policy:
    """Returns a copy of `policy` whose nn.Linear layers run with dynamic int8 quantization."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        from torch.ao.quantization import quantize_dynamic

        return _with_core(policy, lambda m: quantize_dynamic(m, {torch.nn.Linear}, dtype=torch.qint8))


class Engine:
    """Fast inference for one policy; looks like a policy to every wrapper (predict, config, embodiment).

    Every backend shares one input path (`InputBuilder`: validation, history padding, cached instruction
    embeddings) and runs the same `PolicyCore` computation, eagerly, compiled, quantized or in ONNX.

    Attributes:
        policy: the (eager) policy; config: its PolicyConfig; engine_config: the EngineConfig.
        embodiment, stats: from the checkpoint. stats_sha256: hash of stats.json ("" if built in memory).
    """

    def __init__(self, policy: Policy, config: EngineConfig | None = None, *, stats_sha256: str = "") -> None:
        self.engine_config = cfg = config or EngineConfig()
        configure_threads(cfg.num_threads)
        self.policy = policy.eval()
        self.config = policy.config
        self.embodiment = policy.embodiment
        self.stats = policy.stats
        self.stats_sha256 = stats_sha256
        self.backend = cfg.backend
        names = input_names(policy)
        fixed_size = tuple(policy.config.image_size) if cfg.backend == "onnx" else None
        self._inputs = InputBuilder(policy, image_size=fixed_size)  # type: ignore[arg-type]
        self._core: torch.nn.Module | None = None
        self._run: Callable[[dict[str, np.ndarray]], ActionChunk]
        if cfg.backend == "onnx":
            from vla.runtime.onnx_export import OnnxRunner, export_onnx, fingerprint

            path = cfg.onnx_path
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"ONNX file '{path}' does not exist; create it with `vla export`")
            if path is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="vla-onnx-")
                path = str(Path(self._tmpdir.name) / "model.onnx")
                export_onnx(policy, path)
            runner = OnnxRunner(path, num_threads=cfg.num_threads)
            expected = fingerprint(policy)
            stale = [k for k, v in expected.items() if runner.metadata.get(k) != v]
            if stale:
                raise ValueError(
                    f"ONNX file '{path}' was not exported from this checkpoint ({', '.join(stale)} differ); "
                    "re-export it with `vla export`"
                )
            self._run = runner
            return
        source = policy
        if cfg.backend == "int8":
            source = quantize_int8(policy)
        self._core = PolicyCore(source, with_confidence=cfg.with_confidence).eval()
        if cfg.backend == "compile":
            self._core = torch.compile(self._core, backend=cfg.compile_backend)  # type: ignore[assignment]
        assert self._core is not None
        self._run = TorchRunner(self._core, names)

    @classmethod
    def from_checkpoint(cls, directory: str | Path, config: EngineConfig | None = None) -> Engine:
        """Loads a checkpoint directory (config.json, model.safetensors, stats.json, metadata.json)."""
        policy = Policy.from_pretrained(directory, device="cpu")
        return cls(policy, config, stats_sha256=file_sha256(Path(directory) / "stats.json"))

    @property
    def obs_horizon(self) -> int:
        return int(self.config.obs_horizon)

    @property
    def spec(self) -> PolicySpec:
        """What this engine consumes and produces, for the server's metadata."""
        return PolicySpec(
            embodiment=self.embodiment,
            action_space=self.embodiment.action_space().name,
            cameras=tuple(self.config.cameras),
            image_size=(int(self.config.image_size[0]), int(self.config.image_size[1])),
            action_horizon=int(self.config.action_horizon),
            obs_horizon=int(self.config.obs_horizon),
            execute_steps=int(self.config.steps_per_chunk),
            stats_sha256=self.stats_sha256,
            name=self.config.name,
        )

    def reset(self) -> None:
        """Engines keep no per-episode state (history and chunking live in wrappers)."""

    def predict(self, obs: Observation) -> ActionChunk:
        """Predicts an action chunk in robot units.

        Args:
            obs: single step (images uint8 [Hi, Wi, 3], state [S], str) or batched
                ([B, T, Hi, Wi, 3], [B, T, S], B strings).

        Returns:
            ActionChunk: actions float32 [B, H, A], confidence float32 [B] or None.
        """
        return self._run(self._inputs(obs))

    @property
    def estimates(self) -> tuple[str, ...]:
        """The episode features the policy estimates itself (`Policy.estimates`)."""
        return self.policy.estimates

    def estimate(self, obs: Observation) -> dict[str, np.ndarray]:
        """The policy's feature estimates, name -> float32 [B, D] (`Policy.estimate`, eager);
        controllers hold them from an episode's first frame (`vla.runtime.chunking`)."""
        return self.policy.estimate(obs)

    def warmup(self, obs: Observation, *, calls: int = 3) -> None:
        """Runs a few predictions (compilation, caches, allocator) before latency matters."""
        for _ in range(calls):
            self.predict(obs)
