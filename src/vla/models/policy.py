"""The policy: vision + language + state encoders -> fusion -> action head, with normalization inside.

Outside a policy everything is in robot units (numpy for `predict`, torch `Batch` for `loss`); inside,
state is standardized and actions live in [-1, 1] between their q01/q99 quantiles (normalize.py).
Submodules are named "vision", "language", "state", "fusion", "head" so training can freeze or give
learning rates by prefix (`param_groups_by_name`, `set_trainable`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from vla.features import SUBGOAL, Feature, find_feature
from vla.models.cameras import VisionEncoder, VisionOut
from vla.models.checks import check_batch, check_compatible, validate_observation
from vla.models.config import PolicyConfig
from vla.models.fusion import Fusion, FusionOut, StateEncoder
from vla.models.goal import GoalHead
from vla.models.grounding import GroundingHead, check_feature
from vla.models.heads import build_head
from vla.models.language import LanguageOut, build_language
from vla.models.normalize import Normalizer
from vla.models.shift_views import shift_grid, shifted_copies
from vla.spaces import Embodiment
from vla.types import ActionChunk, Batch, DatasetStats, GroundingBatch, Observation

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)
PREFIXES = ("vision", "language", "state", "fusion", "head", "goal", "grounding")


class Policy(nn.Module):
    """A vision-language-action policy. Build with `build_policy`, load with `Policy.from_pretrained`.

    Attributes:
        config: the PolicyConfig it was built from.
        embodiment: the robot it drives (action / state layout).
        stats: the normalization statistics (saved with the weights as stats.json).
        features: the declared features of the data it was trained on (`vla.features`; saved in
            metadata.json); an auxiliary head attaches to one of them by name.
        estimates: the episode features the policy estimates itself (its grounding head's), which
            a controller holds from an episode's first frame (`vla.runtime.chunking`).
        device: where its tensors live.
    """

    def __init__(
        self,
        config: PolicyConfig,
        *,
        embodiment: Embodiment,
        stats: DatasetStats,
        device: str | torch.device = "cpu",
        vision_backbone_config: dict[str, Any] | None = None,
        features: tuple[Feature, ...] = (),
    ) -> None:
        super().__init__()
        check_compatible(config, embodiment, stats)
        self.config = config
        self.embodiment = embodiment
        self.stats = stats
        self.features = tuple(features)
        self.action_dim = stats.action.dim
        self.state_dim = stats.state.dim
        D = config.fusion.dim
        self.normalizer = Normalizer(stats)
        self.language = build_language(config.language)
        lang_dim = self.language.out_dim
        self.vision = VisionEncoder(config, cond_dim=lang_dim, dim=D, hf_config=vision_backbone_config)
        self.state_index = _state_index(embodiment, config.fusion.state_fields)
        self.state = StateEncoder(len(self.state_index), config.obs_horizon, config.fusion.state_hidden, D)
        n_vis = self.vision.first.num_tokens * config.obs_horizon * len(config.cameras)
        has_ee = any(f.name == "ee_pos" for f in embodiment.state_fields)
        # The grounding head needs an end-effector position to express its estimate relative to.
        self.grounding: GroundingHead | None = None
        self.grounding_feature: Feature | None = None
        if config.grounding_loss > 0:
            self.grounding_feature = find_feature(
                self.features,
                config.grounding_feature,
                where=f"the data of this policy (grounding_feature='{config.grounding_feature}')",
            )
            check_feature(self.grounding_feature)
            if not has_ee:
                raise ValueError(
                    f"grounding_loss > 0 needs an 'ee_pos' state field; embodiment '{embodiment.name}' has none"
                )
            ee = embodiment.state_slice("ee_pos")
            self.ee_slice = ee
            # The pose the head reads: ee_pos, plus ee_quat when the embodiment has it.
            names = [f.name for f in embodiment.state_fields]
            pose = [embodiment.state_slice(n) for n in ("ee_pos", "ee_quat") if n in names]
            self.pose_index = [i for sl in pose for i in range(sl.start, sl.stop)]
            self.grounding = GroundingHead(
                n_vis,
                D,
                pose_dim=len(self.pose_index),
                lang_dim=lang_dim,
                mean=self.normalizer.state_mean[ee],
                std=self.normalizer.state_std[ee],
                kind=config.grounding_head,
                channels=int(getattr(self.vision.first.backbone, "out_channels", 0))
                if self.vision.first.is_map
                else 0,
                num_cameras=len(config.cameras),
            )
        # The vision tokens the action fusion reads (config.fusion.vision); auxiliary heads read all.
        per_cam = n_vis // len(config.cameras)
        self.fused_vision: list[int] | None = None
        if config.fusion.vision != "all":
            cams = [i for i, c in enumerate(config.cameras) if c == config.fusion.vision]
            self.fused_vision = [i * per_cam + k for i in cams for k in range(per_cam)]
        self.fusion = Fusion(
            config,
            lang_dim=lang_dim,
            num_vision_tokens=n_vis if self.fused_vision is None else len(self.fused_vision),
            num_state_tokens=2 if self.grounding is not None else 1,
        )
        space = embodiment.action_space()
        grip = space.slice("gripper") if any(g.name == "gripper" for g in space.groups) else slice(0, 0)
        self.head = build_head(
            config, action_dim=self.action_dim, gripper_dims=tuple(range(grip.start, grip.stop))
        )
        # The sub-goal head exists only when asked for and the robot has end effectors (each one's
        # position at its next closure flip, `vla.data.subgoals`).
        self.goal: GoalHead | None = None
        effectors = embodiment.effector_layout()
        if config.goal_loss > 0 and effectors:
            idx = [i for sl, _ in effectors for i in range(sl.start, sl.stop)]
            self.goal = GoalHead(
                n_vis, D, mean=self.normalizer.state_mean[idx], std=self.normalizer.state_std[idx]
            )
        self.device = torch.device(device)
        self.to(self.device)

    @property
    def estimates(self) -> tuple[str, ...]:
        """Names of the episode features this policy estimates itself (`estimate`)."""
        return () if self.grounding_feature is None else (self.grounding_feature.name,)

    # ----------------------------------------------------------------------------------- parameters
    def param_groups_by_name(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters grouped by top-level prefix: vision, language, state, fusion, head (and
        goal / grounding, when the policy has those heads)."""
        optional = {"goal": self.goal, "grounding": self.grounding}  # only listed when built
        present = [p for p in PREFIXES if p not in optional or optional[p] is not None]
        groups: dict[str, list[nn.Parameter]] = {p: [] for p in present}
        for name, p in self.named_parameters():
            prefix = name.split(".", 1)[0]
            if prefix in groups and p.requires_grad:
                groups[prefix].append(p)
        return groups

    def set_trainable(self, prefixes: tuple[str, ...] | list[str], *, trainable: bool) -> None:
        """Freezes (trainable=False) or unfreezes the submodules named by `prefixes`."""
        unknown = [p for p in prefixes if p not in PREFIXES]
        if unknown:
            raise ValueError(f"unknown submodule prefixes {unknown}; expected some of {PREFIXES}")
        for name, p in self.named_parameters():
            if name.split(".", 1)[0] in prefixes:
                p.requires_grad_(trainable)

    def num_params(self, *, trainable_only: bool = False) -> int:
        """Parameters saved in the checkpoint (a frozen pretrained text encoder is not counted)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def reset(self) -> None:
        """Clears per-episode state. Models keep none (chunking and history are wrappers' work)."""

    # ------------------------------------------------------------------------------------- forward
    @property
    def reads_vision(self) -> bool:
        """Whether the action path needs the cameras (False for `fusion.vision="none"`, where only the
        grounding head looks, once per episode when its estimate is held)."""
        return self.fused_vision is None or len(self.fused_vision) > 0

    def _encode(
        self,
        images: dict[str, torch.Tensor],
        state: torch.Tensor,
        instruction: list[str],
        *,
        scene: torch.Tensor | None = None,
        need_vision: bool = False,
        return_weights: bool = False,
    ) -> tuple[FusionOut, VisionOut | None]:
        """images: camera -> uint8 (B, T, Hi, Wi, 3); state: (B, T, S) robot units; scene: (B, D) the
        grounding token's feature value (its units), or None for the head's estimate on this frame.
        The vision encoder runs only when something reads it (or `need_vision`); else vis is None."""
        lang = self.language(instruction, self.device)
        estimator = self.grounding if scene is None else None  # the head estimates a missing scene
        sentence_pass = need_vision or self.reads_vision
        sentence_pass |= estimator is not None and not estimator.per_role_vision
        vis = self.vision(images, lang.sentence) if sentence_pass else None
        if estimator is not None:
            pose = self.normalizer.state(state)[:, -1, self.pose_index]
            scene = estimator.to_labels(self._grounding_pred(images, lang, pose, vis))
        return self.fuse(lang, vis, state, scene, return_weights=return_weights), vis

    def _grounding_pred(
        self, images: dict[str, torch.Tensor], lang: LanguageOut, pose: torch.Tensor, vis: VisionOut | None
    ) -> torch.Tensor:
        """The grounding head's prediction (B, D): from `vis` (the sentence-conditioned pass), or for
        a per-role head from one vision pass per role."""
        assert self.grounding is not None
        if self.grounding.per_role_vision:
            views = [self.vision(images, c) for c in self.grounding.conditions(lang)]
            return self.grounding(views, pose, lang)
        if vis is None:
            vis = self.vision(images, lang.sentence)
        return self.grounding(vis, pose, lang)

    def fuse(
        self,
        lang: LanguageOut,
        vis: VisionOut | None,
        state: torch.Tensor,
        scene: torch.Tensor | None,
        *,
        return_weights: bool = False,
    ) -> FusionOut:
        """[language, state (+ grounding token), the vision tokens the action path reads] -> FusionOut.
        Shared by `predict`/`loss` and the engine core (vla.runtime.core), so they cannot drift apart.

        Args:
            lang: the instruction's encoding; vis: the vision encoder's output (None when not
                `reads_vision`); state: (B, T, S) robot units; scene: (B, D) the grounding feature's
                value (grounding policies only).
        """
        norm = self.normalizer.state(state)
        if len(self.state_index) != self.state_dim:  # a subset: index (a copy) only then
            norm = norm[..., self.state_index]
        st = self.state(norm)  # (B, 1, D)
        p = self.config.fusion.state_dropout
        if self.training and p > 0:
            st = st * (torch.rand(st.shape[0], 1, 1, device=st.device) >= p)  # blank whole tokens
        if self.grounding is not None:
            assert scene is not None
            ee = state[:, -1, self.ee_slice].float()
            st = torch.cat([st, self.grounding.token(scene, ee)], dim=1)  # (B, 2, D)
        if vis is None or self.fused_vision is not None:
            B, D = st.shape[0], st.shape[-1]
            tokens = st.new_zeros(B, 0, D) if vis is None else vis.tokens[:, self.fused_vision]
            vis = VisionOut(tokens, [], self.vision.grid, [])
        return self.fusion(lang, st, vis, return_weights=return_weights)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on a batch in robot units (normalized inside); padded action steps are ignored.

        Returns:
            the scalar loss (with grad) and float metrics ("loss" plus head-specific ones).
        """
        T = self.config.obs_horizon
        check_batch(batch, self.config, self.state_dim, self.action_dim)
        images = {c: batch.images[c][:, -T:].to(self.device) for c in self.config.cameras}
        state = batch.state[:, -T:].to(self.device, torch.float32)
        actions = batch.actions[:, : self.config.action_horizon].to(self.device, torch.float32)
        valid = ~batch.action_pad[:, : self.config.action_horizon].to(self.device)
        scene = None
        feat = self.grounding_feature
        if self.grounding is not None and feat is not None and feat.name in batch.features:
            # Teacher forcing: the recorded value, perturbed like an estimate (vla.models.grounding).
            mask = batch.features.get(feat.mask_key)
            scene = self.grounding.perturb(
                batch.features[feat.name].to(self.device, torch.float32),
                None if mask is None else mask.to(self.device),
                self.config.grounding_noise,
            )
        goal = batch.features.get(SUBGOAL) if self.goal is not None else None
        fused, vis = self._encode(
            images, state, list(batch.instruction), scene=scene, need_vision=goal is not None
        )
        loss, metrics = self.head.loss(fused, self.normalizer.action(actions), valid)
        if self.goal is not None and goal is not None:
            assert vis is not None
            goal_loss, err_cm = self.goal.loss(vis.tokens, goal.to(self.device, torch.float32))
            loss = loss + self.config.goal_loss * goal_loss
            metrics = {
                **metrics,
                "loss": float(loss.detach()),
                "goal_loss": float(goal_loss.detach()),
                "goal_cm": err_cm,
            }
        return loss, metrics

    def grounding_loss(self, batch: GroundingBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of the grounding head on labelled views (weighted by `config.grounding_loss`)."""
        if self.grounding is None:
            raise ValueError("this policy has no grounding head (its config has grounding_loss=0)")
        missing = [c for c in self.config.cameras if c not in batch.images]
        if missing:
            raise ValueError(
                f"grounding batch lacks cameras {missing}; the policy needs {list(self.config.cameras)}"
            )
        if batch.state.ndim != 2 or batch.state.shape[1] != self.state_dim:
            raise ValueError(
                f"grounding batch 'state' must be [B, {self.state_dim}], got {tuple(batch.state.shape)}"
            )
        T = self.config.obs_horizon
        images = {c: fit_history(batch.images[c], T).to(self.device) for c in self.config.cameras}
        lang = self.language(list(batch.instruction), self.device)
        pose = self.normalizer.state(batch.state.to(self.device, torch.float32))[:, self.pose_index]
        pred = self._grounding_pred(images, lang, pose, None)
        loss, metrics = self.grounding.loss(pred, batch.labels.to(self.device), batch.mask.to(self.device))
        return self.config.grounding_loss * loss, metrics

    def estimate(self, obs: Observation) -> dict[str, np.ndarray]:
        """The episode features this policy estimates (`estimates`) on this frame: name -> float32
        [B, D] in the feature's units (positions in metres). Pass them back in `Observation.features`
        to hold them (`vla.runtime.chunking.ObservationHistory` reads them from an episode's first
        frame). With `config.grounding_shift` > 0 the estimate is the mean over nine shifted copies.
        """
        if self.grounding is None or self.grounding_feature is None:
            raise ValueError("this policy estimates no feature (its config has grounding_loss=0)")
        images, state, instr = self._obs_tensors(obs)
        offsets = shift_grid(self.config.grounding_shift)
        K, B = len(offsets), state.shape[0]
        if K > 1:  # average over shifted views (config.grounding_shift)
            images = {c: shifted_copies(v, offsets) for c, v in images.items()}
            state, instr = state.repeat(K, 1, 1), instr * K
        with self._inference():
            lang = self.language(instr, self.device)
            pose = self.normalizer.state(state)[:, -1, self.pose_index]
            out = self.grounding.to_labels(self._grounding_pred(images, lang, pose, None))
        return {self.grounding_feature.name: out.view(K, B, -1).mean(0).float().cpu().numpy()}

    def _scene_tensor(self, obs: Observation) -> torch.Tensor | None:
        """The observation's value of the grounding feature as (B, D), or None (the policy estimates it)."""
        feat = self.grounding_feature
        if feat is None or feat.name not in obs.features:
            return None
        value = feat.check(obs.as_batch().features[feat.name], where="observation")
        return torch.from_numpy(np.ascontiguousarray(value)).to(self.device)

    def _obs_tensors(self, obs: Observation) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[str]]:
        """Validates an observation and returns (images, state, instructions) as (B, T, ...) tensors."""
        obs = validate_observation(obs, self.config, self.state_dim)
        T = self.config.obs_horizon
        images = {
            c: fit_history(torch.from_numpy(np.ascontiguousarray(obs.images[c])), T)
            for c in self.config.cameras
        }
        state = fit_history(torch.from_numpy(np.asarray(obs.state, dtype=np.float32)), T)
        instr = [obs.instruction] if isinstance(obs.instruction, str) else list(obs.instruction)
        return {k: v.to(self.device) for k, v in images.items()}, state.to(self.device), instr

    def predict(
        self, obs: Observation, *, generator: torch.Generator | None = None, with_confidence: bool = False
    ) -> ActionChunk:
        """Predicts an action chunk in robot units.

        Args:
            obs: single step (images [Hi, Wi, 3], state [S], str) or batched ([B, T, Hi, Wi, 3],
                [B, T, S], list of B strings); a shorter history is padded with its first frame.
            generator: RNG for sampling heads (diffusion / flow), for reproducible chunks.
            with_confidence: for sampling heads, draw a few samples to estimate confidence (slower);
                regression and binned heads always return a confidence.

        Returns:
            ActionChunk with actions float32 [B, H, A] and confidence float32 [B] (or None).
        """
        images, state, instr = self._obs_tensors(obs)
        scene = self._scene_tensor(obs)
        with self._inference():
            fused, _ = self._encode(images, state, instr, scene=scene)
            norm, conf = self.head.sample(fused, generator=generator, with_confidence=with_confidence)
            actions = self.normalizer.unaction(norm)
        return ActionChunk(
            actions=actions.float().cpu().numpy(),
            confidence=None if conf is None else conf.float().cpu().numpy(),
        )

    def attention_map(self, obs: Observation) -> np.ndarray:
        """Where the policy looks: float32 [B, V, h, w] per camera (V = len(config.cameras)), each map
        summing to 1 over its h x w feature grid (upsample it onto the image for an overlay).

        Transformer fusions use the action queries' attention over each camera's tokens, mapped back
        through the tokens' spatial maps; the concat fusion uses the spatial-softmax keypoint maps.
        """
        images, state, instr = self._obs_tensors(obs)
        scene = self._scene_tensor(obs)
        with self._inference():
            fused, vis = self._encode(
                images, state, instr, scene=scene, need_vision=True, return_weights=True
            )
            assert vis is not None
        h, w = vis.grid
        out = []
        for maps, (a, b) in zip(vis.maps, vis.spans, strict=True):
            B = state.shape[0]
            wts = fused.vision_weights[:, a:b] if fused.vision_weights is not None else torch.ones(B, b - a)
            m = wts[:, :, None] * maps if maps is not None else wts[:, :, None] * torch.eye(b - a)[None]
            spatial = m.sum(1)  # (B, n or h*w)
            if spatial.shape[1] != h * w:
                raise ValueError(f"attention of {spatial.shape[1]} tokens cannot be drawn on a {h}x{w} grid")
            out.append(spatial / spatial.sum(1, keepdim=True).clamp(min=1e-12))
        return torch.stack(out, dim=1).view(-1, len(out), h, w).float().cpu().numpy()

    @contextmanager
    def _inference(self) -> Iterator[None]:
        """Eval mode and no autograd for the duration, restoring training mode afterwards."""
        was_training = self.training
        if was_training:
            self.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            if was_training:
                self.train()

    # --------------------------------------------------------------------------------- checkpoints
    def save_pretrained(self, directory: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
        """Writes config.json, model.safetensors, stats.json and metadata.json into `directory`."""
        from vla.models.checkpoint import save_policy

        return save_policy(self, directory, metadata=metadata)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", embodiment: str | None = None
    ) -> Policy:
        """Loads a checkpoint directory; refuses one without stats.json or with only pickled weights.
        For a joint checkpoint (`vla.models.joint`) `embodiment` names the robot whose head to load."""
        from vla.models.checkpoint import load_policy

        return load_policy(directory, device=device, embodiment=embodiment)


def build_policy(
    cfg: PolicyConfig,
    *,
    embodiment: Embodiment,
    stats: DatasetStats,
    features: tuple[Feature, ...] = (),
    device: str | torch.device = "cpu",
) -> Policy:
    """Builds a freshly initialized policy for `embodiment`, normalizing with `stats`; `features` are
    the training data's declared features (an auxiliary head attaches to one by name)."""
    return Policy(cfg, embodiment=embodiment, stats=stats, device=device, features=features)


def _state_index(emb: Embodiment, fields: tuple[str, ...]) -> list[int]:
    """Indices of the state the state token reads: the named fields in order, or everything."""
    if not fields:
        return list(range(emb.state_dim))
    names = [f.name for f in emb.state_fields]
    unknown = [f for f in fields if f not in names]
    if unknown:
        raise ValueError(
            f"fusion.state_fields {unknown} are not state fields of '{emb.name}' (it has {names}); "
            "choose some of them (-p fusion.state_fields=a,b) or none for all"
        )
    return [i for f in fields for i in range(emb.state_slice(f).start, emb.state_slice(f).stop)]


def fit_history(x: ArrayT, T: int) -> ArrayT:
    """(B, t, ...) -> (B, T, ...): the last T frames, or the first frame repeated in front (as windows
    at an episode start are padded in training). The one history rule of every input path: numpy
    arrays (the engines' feeds) and torch tensors (`predict`, grounding views) alike."""
    t = x.shape[1]
    if t >= T:
        return x[:, t - T :]
    if isinstance(x, torch.Tensor):
        return torch.cat([x[:, :1].expand(-1, T - t, *x.shape[2:]), x], dim=1)
    return np.concatenate([np.repeat(x[:, :1], T - t, axis=1), x], axis=1)
