"""Setting up a joint training run: several robots' datasets, one policy with a shared trunk.

`vla train data/panda.h5 --joint-with data/g1.h5` trains one `JointPolicy` (`vla.models.joint`): the
preset's vision and language modules shared by every robot, and per robot the state encoder, fusion,
action head and sub-goal head, each built for that robot's state, actions and cameras. The training
loop is `vla.train`'s own (resume, EMA, stages, time budget); only the data and the policy differ.
"""

from __future__ import annotations

import logging

import torch

from vla.config import TrainConfig
from vla.data.joint_windows import JointWindows
from vla.data.reader import EpisodeDataset
from vla.data.sampler import WindowConfig
from vla.envs.base import suite_paraphraser
from vla.models import PolicyConfig, build_policy, parse_overrides
from vla.models.instruction_check import InstructionCheck
from vla.models.joint import JointPolicy
from vla.models.language import build_vocab
from vla.train_data import TrainData, episode_windows
from vla.train_policy import fit_cameras

log = logging.getLogger("vla.train")

__all__ = ["setup_joint"]


def _open(path: str) -> EpisodeDataset:
    reader = EpisodeDataset(path)
    if reader.stats is None or reader.embodiment is None:
        reader.close()
        raise ValueError(f"{path}: dataset has no normalization statistics or no embodiment description")
    return reader


def _refuse(cfg: TrainConfig, policy_cfg: PolicyConfig) -> None:
    """What a joint run does not do, said before any data is read."""
    if cfg.init_from:
        raise ValueError("joint_with cannot start from init_from: fine-tune one robot's checkpoint instead")
    if cfg.grounding or policy_cfg.grounding_loss > 0:
        raise ValueError(
            "joint_with trains no grounding head: use a preset with grounding_loss=0 (e.g. default)"
        )
    if "cameras" in parse_overrides(list(cfg.policy_overrides)):
        raise ValueError("joint_with uses each robot's own cameras; do not set 'cameras'")


def setup_joint(
    cfg: TrainConfig, policy_cfg: PolicyConfig, *, rank: int, device: str
) -> tuple[TrainData, JointPolicy, list[tuple[str, InstructionCheck]]]:
    """The joint run's data (`JointWindows` over `cfg.dataset` and `cfg.joint_with`), its policy, and
    each robot's instruction check (saved into that robot's checkpoint directory).

    Raises:
        ValueError: a dataset without stats or embodiment, two datasets of one robot, or a setting
            a joint run does not support (`_refuse`).
    """
    _refuse(cfg, policy_cfg)
    readers: list[EpisodeDataset] = []
    try:
        for path in (cfg.dataset, *cfg.joint_with):
            readers.append(_open(path))
        names = [r.embodiment.name for r in readers if r.embodiment is not None]
        if len(set(names)) != len(names):
            raise ValueError(
                f"joint_with needs one dataset per robot; embodiments {names} of {[cfg.dataset, *cfg.joint_with]} repeat"
            )
        if policy_cfg.language.kind == "vocab" and not policy_cfg.language.vocab:
            # One vocabulary for the shared trunk: every robot's instructions.
            words = [i for r in readers for i in r.instructions]
            policy_cfg = policy_cfg.override({"language.vocab": build_vocab(words)})
        wcfg = WindowConfig(obs_horizon=policy_cfg.obs_horizon, action_horizon=policy_cfg.action_horizon)
        cams = [c for r in readers if r.embodiment is not None for c in r.embodiment.cameras]
        slots = tuple(dict.fromkeys(cams))
        train_parts, val_parts, configs = {}, {}, {}
        for name, reader in zip(names, readers, strict=True):
            assert reader.embodiment is not None
            train_parts[name], val = episode_windows(reader, cfg, wcfg)
            if val is not None:
                val_parts[name] = val
            own = fit_cameras(policy_cfg, reader.embodiment, cfg.policy_overrides)
            configs[name] = own.override({"vision.camera_slots": slots})
    except Exception:
        for r in readers:
            r.close()
        raise
    train = JointWindows(train_parts)
    log.info(
        "joint run: %s, %s windows, camera slots %s",
        names,
        [len(p) for p in train_parts.values()],
        list(slots),
    )
    data = TrainData(
        train=train,
        val=JointWindows(val_parts) if len(val_parts) == len(names) else None,
        weights=train.weights(balance_families=cfg.balance_families),
        paraphrase=None,
        reader=readers[0],
        paraphrases={
            n: suite_paraphraser(r.suite) if r.suite else None for n, r in zip(names, readers, strict=True)
        },
        more_readers=tuple(readers[1:]),
    )
    checks = []
    if rank == 0 and policy_cfg.language.kind == "minilm":
        checks = [
            (n, InstructionCheck.fit(list(r.instructions))) for n, r in zip(names, readers, strict=True)
        ]
    torch.manual_seed(cfg.seed)
    members = {
        name: build_policy(
            configs[name],
            embodiment=reader.embodiment,
            stats=reader.stats,
            features=reader.features,
            device=device,
        )
        for name, reader in zip(names, readers, strict=True)
        if reader.embodiment is not None and reader.stats is not None
    }
    policy = JointPolicy(members)
    log.info("joint policy: %d parameters (trunk shared by %d robots)", policy.num_params(), len(members))
    return data, policy, checks
