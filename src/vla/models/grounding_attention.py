"""Role attention: where each instructed role is, as a soft-argmax over the cameras' feature maps.

The `mlp` grounding predictor reads pooled vision tokens and the sentence embedding. Two things limit
it (docs/measured.md): a mean-pooled sentence embedding hardly encodes word order, so in "stack the red
block on the blue block" it cannot tell which block is the base (place errors of 4-9 cm on stack and
move_next_to), and pooled tokens carry positions only through 32 generic keypoints.

This predictor (`PolicyConfig.grounding_head = "attention"`) follows the language-conditioned
attention of CLIPort / Transporter-style grounding, sized for a CPU:
1. one learned query per role (target, place) attends over the instruction's *token* embeddings, which
   are contextual, so "red" in "red block on the blue" and in "blue block on the red" differ: each
   role gets its own phrase vector;
2. that vector, through a small MLP, becomes a channel query; its dot product with every cell of each
   camera's FiLM-conditioned feature map is a heatmap, whose softmax gives an expected cell (u, v) in
   [-1, 1] and an attended feature vector;
3. per role, an MLP maps (u, v, attended features) of every camera, the sentence and the end-effector
   pose to the role's position; the block yaw comes from the target role's features.
The heatmaps are returned too: they show where the head looks (`heatmaps`).
"""

from __future__ import annotations

import torch
from torch import nn

from vla.models.vision import _keypoint_grid

ROLES = ("target", "place")


class RolePhrases(nn.Module):
    """One learned query per role attends over the instruction's contextual token embeddings:
    (B, L, Dl) tokens + (B, L) mask -> (B, R, Dl), a phrase vector per role (word order included)."""

    def __init__(self, lang_dim: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(len(ROLES), lang_dim) * lang_dim**-0.5)
        self.key = nn.Linear(lang_dim, lang_dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        k = self.key(tokens)  # (B, L, Dl)
        logits = torch.einsum("rd,bld->brl", self.queries, k) * k.shape[-1] ** -0.5  # (B, R, L)
        att = logits.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)
        return att @ tokens  # (B, R, Dl)


class RoleAttention(nn.Module):
    """Per-camera feature maps (B, C, h, w) + language tokens + sentence + pose -> (B, 8) prediction
    (target xyz, place xyz in the head's standardized units, then yaw cos/sin 4θ)."""

    def __init__(
        self, channels: int, num_cameras: int, *, lang_dim: int, pose_dim: int, hidden: int = 256
    ) -> None:
        super().__init__()
        self.phrases = RolePhrases(lang_dim)
        self.to_query = nn.Sequential(nn.Linear(2 * lang_dim, hidden), nn.GELU(), nn.Linear(hidden, channels))
        # A 1x1 convolution written as a matmul (PyTorch's CPU 1x1 conv path is several times slower).
        self.key_weight = nn.Parameter(torch.randn(channels, channels) * channels**-0.5)
        # Sharper than uniform from the start: a flat softmax over every cell passes little gradient.
        self.log_temp = nn.Parameter(torch.full((), -2.0))
        per_role = num_cameras * (2 + channels) + lang_dim + pose_dim
        self.position = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Linear(per_role, hidden),
                    nn.GELU(),
                    nn.Linear(hidden, hidden),
                    nn.GELU(),
                    nn.Linear(hidden, 3),
                )
                for _ in ROLES
            ]
        )
        self.yaw = nn.Sequential(nn.Linear(per_role, hidden), nn.GELU(), nn.Linear(hidden, 2))
        self.channels = channels
        self._grids: dict[tuple[int, int, str], torch.Tensor] = {}

    def _grid(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._grids:
            with torch.inference_mode(False):  # the cached grid also serves training steps
                self._grids[key] = _keypoint_grid(h, w, device)
        return self._grids[key]

    def heatmaps(
        self, features: list[torch.Tensor], tokens: torch.Tensor, mask: torch.Tensor, sentence: torch.Tensor
    ) -> list[torch.Tensor]:
        """Per camera, the roles' attention over its cells: (B, R, h * w), each row summing to 1."""
        phrase = self.phrases(tokens, mask)  # (B, R, Dl)
        query = self.to_query(torch.cat([phrase, sentence[:, None].expand_as(phrase)], dim=-1))  # (B, R, C)
        out = []
        for f in features:
            x = f.flatten(2)  # (B, C, h*w)
            keys = self.key_weight @ x  # (B, C, h*w)
            cell = torch.einsum("brc,bcn->brn", query, keys) * self.channels**-0.5
            out.append((cell / self.log_temp.exp()).softmax(-1))  # (B, R, h*w)
        return out

    def forward(
        self,
        features: list[torch.Tensor],
        tokens: torch.Tensor,
        mask: torch.Tensor,
        sentence: torch.Tensor,
        pose: torch.Tensor,
    ) -> torch.Tensor:
        """features: per camera (B, C, h, w); tokens (B, L, Dl) with mask (B, L); sentence (B, Dl);
        pose (B, P) -> (B, 8)."""
        parts = []
        for f, p in zip(features, self.heatmaps(features, tokens, mask, sentence), strict=True):
            h, w = f.shape[-2:]
            uv = p @ self._grid(h, w, f.device)  # (B, R, 2)
            attended = p @ f.flatten(2).transpose(1, 2)  # (B, R, C)
            parts.append(torch.cat([uv, attended], dim=-1))
        z = torch.cat(parts, dim=-1)  # (B, R, V * (2 + C))
        ctx = torch.cat([sentence, pose], dim=-1)  # (B, Dl + P)
        roles = [torch.cat([z[:, r], ctx], dim=-1) for r in range(len(ROLES))]
        pos = [mlp(x) for mlp, x in zip(self.position, roles, strict=True)]  # R x (B, 3)
        return torch.cat([*pos, self.yaw(roles[0])], dim=-1)  # (B, 8)
