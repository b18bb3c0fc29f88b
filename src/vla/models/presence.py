"""Presence check: refuse, before the arm moves, an instruction about an object that is not in the scene.

It also refuses an instruction that names none of the suite's objects ("touch the banana"): every
training instruction names one, and no scene can ground one that does not.

"Pick up the green ball" with no green ball on the table passes every check on words (it is a
training instruction), and a policy then reaches for the nearest green thing or the nearest ball. The
check looks at the scene camera's first frame of the instruction and asks whether each object the
instruction names is there.

How it sees (factorized, so it finds pairs it never saw): a small fully convolutional net predicts, for
every cell of a half-resolution grid, one class per attribute group (tabletop: colour of 5 or none,
shape of 3 or none). The presence of "purple ball" is the largest, over cells, of
P(colour = purple) * P(shape = ball) at that cell. A pair absent from all training scenes is still
found when each of its attributes was seen on other objects, which is the `unseen` split's test.

What it is trained on: rendered first frames of the suite's `train` scenes with per-pixel attribute maps
from the simulator's segmentation (`vla models presence`, the suite's `presence_views`); perception
labels, not demonstrations. The refusal threshold is read on validation scenes of the same split (new
seeds): the balanced-accuracy optimum between the scores of objects on the table and of training pairs
that are not, lowered to the 1st percentile of present objects' scores so that at most about one object
in a hundred that *is* there gets refused. No evaluation split is looked at.

Saved in the checkpoint as `presence_check.safetensors` (weights; groups, object names, camera, image
size and threshold as metadata; no pickle). A checkpoint without the file has no presence check.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from vla.models.instruction_check import Verdict

FILE = "presence_check.safetensors"
FORMAT = "vla-presence-1"
BACKGROUND_WEIGHT = 0.2  # objects cover ~2% of the pixels; without this every cell says "none"
MAX_PERCENTILE_REFUSED = 1.0  # % of present objects the threshold may refuse on validation scenes


class PresenceNet(nn.Module):
    """uint8 [B, H, W, 3] -> per group, logits [B, n_values + 1, H/2, W/2] (class 0 = no object).

    Two branches, so that one attribute cannot be read from another (what makes unseen pairs
    findable): `local` groups (colour) see one pixel at a time (1x1 convolutions, then 2x2 average),
    so a colour head cannot know the shape; the other groups (shape) see a neighbourhood through a
    convolution trunk whose input colours are scrambled in training (`scramble`), so a shape head cannot
    rely on the colour. Measured without the split: every unseen pair was refused (docs/measured.md).
    """

    def __init__(self, group_sizes: list[int], local: list[bool], width: int = 64) -> None:
        super().__init__()
        if len(group_sizes) != len(local):
            raise ValueError(f"{len(group_sizes)} groups but {len(local)} local flags")
        self.local = list(local)
        self.pixel = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 1), nn.ReLU())
        self.trunk = nn.Sequential(
            nn.Conv2d(3, width // 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width // 2, width // 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2),
            nn.ReLU(),
        )
        self.heads = nn.ModuleList(
            nn.Conv2d(16 if loc else width, n + 1, 1) for n, loc in zip(group_sizes, local, strict=True)
        )

    def forward(self, images: torch.Tensor, scramble: torch.Tensor | None = None) -> list[torch.Tensor]:
        """`scramble` float [B, 3, 3]: a per-image colour mix applied to the trunk's input only."""
        x = images.permute(0, 3, 1, 2).float() / 255.0
        xs = x if scramble is None else torch.einsum("bij,bjhw->bihw", scramble, x)
        h = self.trunk(xs)
        p = self.pixel((x - 0.5) * 4.0) if any(self.local) else None
        out = []
        for head, loc in zip(self.heads, self.local, strict=True):
            out.append(F.avg_pool2d(head(p), 2) if loc else head(h))
        return out


def random_scramble(n: int, rng: np.random.Generator) -> torch.Tensor:
    """float32 [n, 3, 3]: a random channel permutation times random gains (0.5-1.3) per image."""
    mats = np.zeros((n, 3, 3), dtype=np.float32)
    for i in range(n):
        mats[i, np.arange(3), rng.permutation(3)] = rng.uniform(0.5, 1.3, size=3)
    return torch.from_numpy(mats)


@dataclass(frozen=True)
class PresenceSpec:
    """What the check knows of the suite: attribute groups, object names -> one value per group, camera."""

    groups: dict[str, tuple[str, ...]]
    objects: dict[str, tuple[str, ...]]
    camera: str
    image_size: tuple[int, int]
    local: tuple[str, ...] = ()  # groups a single pixel shows (colour); see `PresenceNet`

    def __post_init__(self) -> None:
        for name, parts in self.objects.items():
            if len(parts) != len(self.groups) or any(
                p not in values for p, values in zip(parts, self.groups.values(), strict=True)
            ):
                raise ValueError(
                    f"object {name!r} has attributes {parts}; expected one value of each group {self.groups}"
                )

    def net(self) -> PresenceNet:
        """A fresh net for these groups."""
        return PresenceNet([len(v) for v in self.groups.values()], [g in self.local for g in self.groups])

    def class_index(self, name: str) -> list[int]:
        """Per group, the 1-based class of `name`'s attribute."""
        return [vals.index(p) + 1 for p, vals in zip(self.objects[name], self.groups.values(), strict=True)]


def presence_scores(net: PresenceNet, spec: PresenceSpec, images: np.ndarray) -> np.ndarray:
    """float32 [N, n_objects]: each named object's presence in each image (order of `spec.objects`)."""
    net.eval()
    idx = np.array([spec.class_index(n) for n in spec.objects])  # [O, G]
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 256):
            probs = [F.softmax(lg, dim=1) for lg in net(torch.from_numpy(images[start : start + 256]))]
            joint = torch.ones(probs[0].shape[0], len(idx), *probs[0].shape[2:])
            for g, p in enumerate(probs):
                joint = joint * p[:, torch.from_numpy(idx[:, g])]
            out.append(joint.flatten(2).amax(2).numpy())
    return np.concatenate(out).astype(np.float32)


def _present_mask(spec: PresenceSpec, objects: list[list[str]]) -> np.ndarray:
    names = list(spec.objects)
    mask = np.zeros((len(objects), len(names)), dtype=bool)
    for i, on_table in enumerate(objects):
        mask[i, [names.index(n) for n in on_table]] = True
    return mask


def fit_threshold(scores: np.ndarray, present: np.ndarray, candidates: np.ndarray) -> dict[str, float]:
    """The refusal threshold from validation scores (see the module doc) and what it does there.

    Args:
        scores: float [N, O]; present: bool [N, O]; candidates: bool [O], the objects that can be absent
            in a scene of the split (the training pairs; the others never appear and are not scored).
    """
    pos = scores[present]
    neg = scores[~present & candidates[None, :]]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("fitting a presence threshold needs scenes with objects present and absent")
    grid = np.unique(np.concatenate([pos, neg]))
    bal = [(np.mean(pos >= t) + np.mean(neg < t)) / 2 for t in grid]
    best = float(grid[int(np.argmax(bal))])
    below = neg[neg < best]
    if len(below):  # midway into the gap under the optimum, not on its edge
        best = (best + float(below.max())) / 2
    threshold = min(best, float(np.percentile(pos, MAX_PERCENTILE_REFUSED)))
    return {
        "threshold": threshold,
        "present_refused": float(np.mean(pos < threshold)),
        "absent_passed": float(np.mean(neg >= threshold)),
        "present_scores": len(pos),
        "absent_scores": len(neg),
    }


def train_presence(
    spec: PresenceSpec,
    train: dict[str, Any],
    val: dict[str, Any],
    *,
    candidates: list[str],
    epochs: int = 6,
    batch_size: int = 64,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[PresenceNet, dict[str, float]]:
    """Trains the net on `train` views ("images", "maps", "objects") and reads the threshold on `val`."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = spec.net()
    # The per-pixel branch sits on "everything is background" for a long while at the trunk's rate
    # (measured: 0% of object pixels right after 200 steps at 2e-3, 84% after 300 at 1e-2).
    pixel = [*net.pixel.parameters()] + [
        p for h, loc in zip(net.heads, net.local, strict=True) if loc for p in h.parameters()
    ]
    ids = {id(p) for p in pixel}
    rest = [p for p in net.parameters() if id(p) not in ids]
    rates = [1e-2, 2e-3]
    opt = torch.optim.Adam([{"params": pixel}, {"params": rest}], lr=rates[1])
    images = torch.from_numpy(train["images"])
    maps = torch.from_numpy(train["maps"][:, :, ::2, ::2].astype(np.int64))
    weights = [torch.tensor([BACKGROUND_WEIGHT] + [1.0] * len(v)) for v in spec.groups.values()]
    n = len(images)
    steps = epochs * max(1, n // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=rates, total_steps=steps)
    t0, step = time.time(), 0
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n - batch_size + 1, batch_size):
            b = torch.from_numpy(order[start : start + batch_size])
            x, y = images[b], maps[b]
            if rng.random() < 0.5:  # colour and shape do not depend on the side of the table
                x, y = x.flip(2), y.flip(3)
            logits = net(x, random_scramble(len(x), rng))
            loss = sum(F.cross_entropy(lg, y[:, g], weight=weights[g]) for g, lg in enumerate(logits))
            opt.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            opt.step()
            sched.step()
            total += float(loss.detach())  # type: ignore[union-attr]
            step += 1
        log(
            f"epoch {epoch + 1}/{epochs} loss {total / max(1, n // batch_size):.4f} ({time.time() - t0:.0f} s)"
        )
    names = list(spec.objects)
    cand = np.array([name in candidates for name in names])
    fit = fit_threshold(presence_scores(net, spec, val["images"]), _present_mask(spec, val["objects"]), cand)
    return net, fit


class PresenceCheck:
    """Refuses an instruction naming an object its scene image does not show (see the module doc)."""

    def __init__(self, net: PresenceNet, spec: PresenceSpec, threshold: float) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"a presence threshold must be in (0, 1), got {threshold}")
        self.net = net.eval()
        self.spec = spec
        self.threshold = float(threshold)
        names = sorted(spec.objects, key=len, reverse=True)
        self._mention = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
        self._names = list(spec.objects)

    def mentions(self, instruction: str) -> list[str]:
        """The known object names in `instruction`, in order (duplicates once)."""
        found = self._mention.findall(" ".join(instruction.lower().split()))
        return list(dict.fromkeys(found))

    def __call__(self, instruction: str, images: dict[str, np.ndarray]) -> Verdict:
        """The verdict on `instruction` in the scene `images` show (camera -> uint8 [H, W, 3])."""
        named = self.mentions(instruction)
        if not named:
            # Every instruction a policy of the suite was trained on names at least one of its objects;
            # one that names none ("touch the banana") cannot be grounded in any scene.
            some = ", ".join(self._names[:3])
            return Verdict(
                False,
                "unknown_object",
                f"the instruction {instruction!r} names none of the {len(self._names)} objects this policy "
                f"knows (such as {some})",
                0.0,
            )
        image = images.get(self.spec.camera)
        want = (*self.spec.image_size, 3)
        if image is None or image.shape != want or image.dtype != np.uint8:
            got = None if image is None else f"{image.dtype} {image.shape}"
            raise ValueError(
                f"the presence check needs images[{self.spec.camera!r}] as uint8 {want}, got {got}"
            )
        scores = presence_scores(self.net, self.spec, image[None])[0]
        missing = [(n, float(scores[self._names.index(n)])) for n in named]
        missing = [(n, s) for n, s in missing if s < self.threshold]
        if not missing:
            return Verdict(True, similarity=float(min(scores[self._names.index(n)] for n in named)))
        said = ", ".join(f"{n} (presence {s:.2f} < {self.threshold:.2f})" for n, s in missing)
        return Verdict(
            False,
            "absent_object",
            f"the instruction {instruction!r} names what the {self.spec.camera} camera does not show: {said}",
            min(s for _, s in missing),
        )

    def save(self, directory: str | Path, *, fit: dict[str, float] | None = None) -> Path:
        """Writes `presence_check.safetensors` into a checkpoint directory."""
        path = Path(directory) / FILE
        meta = {
            "format": FORMAT,
            "groups": json.dumps({k: list(v) for k, v in self.spec.groups.items()}),
            "objects": json.dumps({k: list(v) for k, v in self.spec.objects.items()}),
            "camera": self.spec.camera,
            "image_size": json.dumps(list(self.spec.image_size)),
            "local": json.dumps(list(self.spec.local)),
            "threshold": repr(self.threshold),
            "fit": json.dumps(fit or {}),
        }
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> PresenceCheck | None:
        """The checkpoint's presence check, or None when it has none."""
        path = Path(directory) / FILE
        if not path.is_file():
            return None
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        try:
            if meta["format"] != FORMAT:
                raise ValueError(f"format {meta['format']!r}, expected {FORMAT!r}")
            groups = {k: tuple(v) for k, v in json.loads(meta["groups"]).items()}
            objects = {k: tuple(v) for k, v in json.loads(meta["objects"]).items()}
            size = tuple(int(x) for x in json.loads(meta["image_size"]))
            local = tuple(json.loads(meta["local"]))
            spec = PresenceSpec(groups, objects, meta["camera"], (size[0], size[1]), local)
            threshold = float(meta["threshold"])
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"'{path}' is not a valid presence check ({e})") from e
        net = spec.net()
        net.load_state_dict(load_file(str(path)))
        return cls(net, spec, threshold)
