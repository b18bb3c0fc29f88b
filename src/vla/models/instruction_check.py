"""Instruction check: refuse, before the arm moves, an instruction the policy was never taught to ground.

A policy maps *any* string to actions, so "juggle the red block", "touch the banana" or "xqv blorp"
would still move the arm towards something. The check runs once per instruction, before the policy's
first action, on text alone (what a real robot has too). It refuses, with the reason:

1. `empty`: no word at all ("", " ", "- - -");
2. `garbled`: fewer than half of its words are words (the sentence encoder's whole-word vocabulary,
   30,000 English words, or a word of the training instructions);
3. `unfamiliar`: its sentence embedding is further than `min_similarity` (cosine) from every
   instruction the policy was trained on.

How 3 was set (docs/measured.md, "Refusing what cannot be grounded"): on the tabletop templates, every
held-out paraphrase had a nearest-training cosine of at least 0.67 (p10 0.79), instructions naming an
object the suite never had ("pick up the laptop") 0.42-0.72 (median 0.50), garbled text 0.17-0.37.
`min_similarity = 0.62` keeps every paraphrase. What text cannot tell: a known object absent from the
scene ("the green ball" with none on the table) and most unknown verbs ("juggle the red block": median
0.79, as close as a paraphrase) pass this check; they need the scene, not the words.

Where it lives: fitted by `vla train` on the dataset's instructions and saved in the checkpoint as
`instruction_check.safetensors` (the training instructions' normalized MiniLM embeddings, the word list
and the threshold as metadata; no pickle). A checkpoint without the file has no check. It needs the
MiniLM encoder (the `minilm` language kind); other encoders' checkpoints get none.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

if TYPE_CHECKING:
    from vla.models.language import PretrainedTextEncoder

FILE = "instruction_check.safetensors"
MIN_SIMILARITY = 0.62
MAX_BANK = 4096  # training instructions kept (a random subset beyond this; the nearest one matters)
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Verdict:
    """The check's answer: `ok`, or the `kind` of refusal and a sentence for the operator."""

    ok: bool
    kind: str = ""
    reason: str = ""
    similarity: float = 1.0
    nearest: str = ""


def _encoder() -> PretrainedTextEncoder:
    from vla.models.config import LanguageConfig
    from vla.models.language import PretrainedTextEncoder

    return PretrainedTextEncoder(LanguageConfig(kind="minilm"))


def _embed(encoder: PretrainedTextEncoder, texts: list[str]) -> np.ndarray:
    with torch.no_grad():
        out = encoder(texts, torch.device("cpu"))
    return out.sentence.float().numpy().astype(np.float32)


class InstructionCheck:
    """Refuses empty, garbled and unfamiliar instructions (see the module docstring)."""

    def __init__(
        self,
        instructions: list[str],
        bank: np.ndarray,
        words: frozenset[str],
        *,
        min_similarity: float = MIN_SIMILARITY,
    ) -> None:
        if bank.ndim != 2 or len(bank) != len(instructions) or len(instructions) == 0:
            raise ValueError(
                f"an instruction check needs one embedding per training instruction, got {bank.shape} "
                f"for {len(instructions)} instructions"
            )
        if not 0.0 < min_similarity < 1.0:
            raise ValueError(f"min_similarity must be in (0, 1), got {min_similarity}")
        self.instructions = list(instructions)
        self.bank = bank.astype(np.float32)
        self.words = words
        self.min_similarity = float(min_similarity)
        self._encoder = _encoder()
        self._dictionary = {
            w for w in self._encoder.tokenizer.get_vocab() if w.isalpha() and w.isascii() and len(w) > 1
        } | {"a", "i"}
        self._cache: dict[str, Verdict] = {}

    @classmethod
    def fit(
        cls, instructions: list[str], *, min_similarity: float = MIN_SIMILARITY, seed: int = 0
    ) -> InstructionCheck:
        """The check for a policy trained on `instructions` (duplicates are dropped)."""
        unique = sorted({" ".join(t.lower().split()) for t in instructions if t.strip()})
        if not unique:
            raise ValueError("cannot fit an instruction check: the dataset has no non-empty instruction")
        if len(unique) > MAX_BANK:
            keep = np.random.default_rng(seed).choice(len(unique), MAX_BANK, replace=False)
            unique = [unique[int(i)] for i in sorted(keep)]
        words = frozenset(w for t in unique for w in _WORD.findall(t))
        return cls(unique, _embed(_encoder(), unique), words, min_similarity=min_similarity)

    def __call__(self, instruction: str) -> Verdict:
        """The verdict on `instruction` (cached per string)."""
        if instruction not in self._cache:
            self._cache[instruction] = self._judge(instruction)
        return self._cache[instruction]

    def _judge(self, instruction: str) -> Verdict:
        words = _WORD.findall(instruction.lower())
        if not words:
            return Verdict(False, "empty", f"the instruction {instruction!r} has no words to act on")
        unknown = [w for w in words if w not in self.words and w not in self._dictionary]
        if len(unknown) * 2 > len(words):
            return Verdict(
                False, "garbled", f"the instruction {instruction!r} is not language: {unknown} are not words"
            )
        sims = self.bank @ _embed(self._encoder, [" ".join(instruction.lower().split())])[0]
        best = int(np.argmax(sims))
        sim, nearest = float(sims[best]), self.instructions[best]
        if sim < self.min_similarity:
            new = [w for w in words if w not in self.words]
            return Verdict(
                False,
                "unfamiliar",
                f"the instruction {instruction!r} is unlike every instruction this policy was trained on "
                f"(nearest: {nearest!r}, similarity {sim:.2f} < {self.min_similarity:.2f}; words it never "
                f"saw: {new})",
                sim,
                nearest,
            )
        return Verdict(True, similarity=sim, nearest=nearest)

    def save(self, directory: str | Path) -> Path:
        """Writes `instruction_check.safetensors` into a checkpoint directory."""
        path = Path(directory) / FILE
        meta = {
            "instructions": json.dumps(self.instructions),
            "words": json.dumps(sorted(self.words)),
            "min_similarity": repr(self.min_similarity),
        }
        save_file({"bank": self.bank}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> InstructionCheck | None:
        """The checkpoint's check, or None when it has none."""
        path = Path(directory) / FILE
        if not path.is_file():
            return None
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        try:
            instructions = json.loads(meta["instructions"])
            words = frozenset(json.loads(meta["words"]))
            min_similarity = float(meta["min_similarity"])
        except (KeyError, ValueError) as e:
            raise ValueError(f"'{path}' is not a valid instruction check (metadata: {e})") from e
        return cls(instructions, load_file(str(path))["bank"], words, min_similarity=min_similarity)
