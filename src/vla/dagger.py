"""DAgger (Ross et al., 2011) with a suite's scripted expert as the teacher: `vla dagger`.

Each round rolls the current policy out in the suite, asks the expert (the suite's `labeller`, which acts
from any state) for its action on every state the policy visits, appends those episodes to the dataset
with the expert's actions as the labels, and fine-tunes the policy on the whole aggregate. With
probability beta per step the expert's action is the one executed (`vla.rollout.run_episode`), so
early rounds, when the policy is poor, still reach the later states of a task; beta decays per round.

Files in `out`:
  data.h5                the aggregate: a copy of the starting dataset plus every round's episodes
                         (their meta says `dagger_round`, `beta`, `rollout_success`)
  round_<r>/             round r's fine-tuning run (`vla train` layout); round_<r>/checkpoint is its policy
  dagger_config.json     the run's config; a re-run with a different one (other than `rounds`) is refused
  dagger_state.json      rounds finished and their figures (written atomically)
  rollouts_<r>.jsonl     HG-DAgger only: one line per finished rollout of round r (what resuming skips)

With `mode="hg"` it is HG-DAgger (Kelly et al., 2019) instead: no beta; the expert takes over only
where the policy's action strays from its own (`vla.rollout.takeover`), and only those corrections are
kept, each stretch of expert driving as one episode (`vla.dagger_hg`).

Resumable after a crash or SIGKILL at any point: episodes are appended atomically one at a time and a
resumed round collects only the seeds it lacks; an interrupted fine-tuning resumes from its
`train_state/` (`vla train --resume`).

Differs from the paper in one way, for this CPU: each round fine-tunes the previous round's policy
(`TrainConfig.init_from`) for `steps` steps instead of training from scratch on the aggregate; the
recipe's full training is an hour here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla.checkpoint_layout import not_a_checkpoint
from vla.config import TrainConfig, from_dict, to_dict
from vla.dagger_hg import collect_corrections
from vla.data.collect import result_to_episode
from vla.data.reader import EpisodeDataset
from vla.data.stats import compute_and_store
from vla.data.writer import DatasetWriter
from vla.envs.base import (
    Env,
    LabellingSuite,
    Suite,
    embodiment_options,
    get_suite,
    option_families,
    suite_features,
)
from vla.rollout import EpisodeResult, iter_episodes, make_jobs
from vla.rollout.policy_actor import PolicyActorFactory
from vla.rollout.takeover import Takeover

# Seeds of round r start at seed + r * ROUND_SEEDS: rounds never share an episode.
ROUND_SEEDS = 10_000
MODES = ("dagger", "hg")


@dataclass(frozen=True)
class DaggerConfig:
    """A DAgger run.

    Attributes:
        dataset: the expert demonstrations the starting checkpoint was trained on (copied, not changed).
        checkpoint: round 0's policy. Its run's `train_config.json` (beside it) is the recipe every
            round fine-tunes with (preset, overrides, grounding file, batch size...).
        out: the run directory.
        suite, split, families: where the policy is rolled out (families empty: all of the suite's).
        rounds: rounds to run (a re-run with more continues).
        episodes_per_task: rollouts per family and round.
        beta: probability per step of executing the expert's action in round 1.
        beta_decay: beta of round r is beta * beta_decay ** (r - 1).
        steps: fine-tuning steps per round.
        lr: peak learning rate of the fine-tuning (lower than a from-scratch run's: the weights are
            already trained; 3e-4 is where the recipe's own cosine schedule is after ~60% of its steps).
        workers: rollout processes.
        seed: seed of round 0's first episode (above `vla eval`'s 100_000 + episodes: no overlap).
        mode: "dagger" (every visited state labelled, beta-mixing) or "hg" (HG-DAgger: the expert's
            corrections only; `beta` is not used).
        tolerance: HG-DAgger's takeover tolerance (`vla.rollout.takeover.Takeover.tolerance`).
    """

    dataset: str
    checkpoint: str
    out: str = "runs/dagger"
    suite: str = "tabletop"
    split: str = "train"
    families: tuple[str, ...] = ()
    rounds: int = 2
    episodes_per_task: int = 20
    beta: float = 0.5
    beta_decay: float = 0.5
    steps: int = 1000
    lr: float = 3e-4
    workers: int = 2
    seed: int = 200_000
    mode: str = "dagger"
    tolerance: float = Takeover.tolerance

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"DaggerConfig.mode must be one of {MODES}, got {self.mode!r}")
        Takeover(tolerance=self.tolerance)  # raises on a bad tolerance
        for name in ("rounds", "episodes_per_task", "steps", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"DaggerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"DaggerConfig.beta must be in [0, 1], got {self.beta}")
        if not 0.0 <= self.beta_decay <= 1.0:
            raise ValueError(f"DaggerConfig.beta_decay must be in [0, 1], got {self.beta_decay}")
        if not self.lr > 0:
            raise ValueError(f"DaggerConfig.lr must be positive, got {self.lr}")

    def beta_of(self, round_: int) -> float:
        """Beta of round `round_` (1-based); 0 for HG-DAgger, where the takeover decides who drives."""
        return 0.0 if self.mode == "hg" else self.beta * self.beta_decay ** (round_ - 1)


def suite_labeller(env: Env, suite: Suite) -> Any:
    """The labeller factory of the rollout workers (module-level: picklable)."""
    return suite.labeller(env)  # type: ignore[attr-defined]  # checked by `run_dagger`


def run_dagger(cfg: DaggerConfig, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs (or resumes) the rounds of `cfg`; returns the state: the rounds' figures, the last checkpoint."""
    suite = get_suite(cfg.suite)
    if not isinstance(suite, LabellingSuite):
        raise ValueError(
            f"suite '{cfg.suite}' declares no labeller: its experts cannot label the states a policy "
            "visits, which DAgger needs (`vla.envs.base.LabellingSuite`)"
        )
    if cfg.split not in suite.splits:
        raise ValueError(f"unknown split '{cfg.split}' for suite '{cfg.suite}'; known: {list(suite.splits)}")
    out = Path(cfg.out)
    data = out / "data.h5"
    source = data if data.exists() else Path(cfg.dataset)
    if not source.is_file():
        raise FileNotFoundError(f"dataset {cfg.dataset} does not exist")
    # The robot the data was recorded with picks the suite's envs (e.g. tabletop's humanoid).
    with EpisodeDataset(source) as ds:
        assert ds.embodiment is not None
        env_options = embodiment_options(suite, ds.embodiment.name)
    known = option_families(suite, env_options)
    families = cfg.families or known
    unknown = [f for f in families if f not in known]
    if unknown:
        raise ValueError(f"unknown families {unknown} for suite '{cfg.suite}'; known: {list(known)}")
    recipe = _recipe(Path(cfg.checkpoint))
    out.mkdir(parents=True, exist_ok=True)
    _check_same_run(out / "dagger_config.json", cfg)
    if not data.exists():
        shutil.copyfile(cfg.dataset, out / "data.h5.tmp")
        os.replace(out / "data.h5.tmp", data)
    state = _read_state(out)
    for r in range(len(state["rounds"]) + 1, cfg.rounds + 1):
        policy = cfg.checkpoint if r == 1 else str(out / f"round_{r - 1}" / "checkpoint")
        figures = _collect(cfg, r, families, policy=policy, data=data, env_options=env_options)
        say(f"round {r}: {json.dumps(figures)}")
        run = out / f"round_{r}"
        train_cfg = dataclasses.replace(
            recipe,
            dataset=str(data),
            out=str(run),
            steps=cfg.steps,
            lr=cfg.lr,
            time_budget_s=0.0,
            init_from=policy,
        )
        from vla.train import train  # torch and the model code: only once a round trains

        summary = train(train_cfg, resume=(run / "train_state").exists())
        figures["checkpoint"] = summary["checkpoint"]
        state["rounds"].append(figures)
        _write_json(out / "dagger_state.json", state)
    state["checkpoint"] = state["rounds"][-1]["checkpoint"] if state["rounds"] else cfg.checkpoint
    return state


def _collect(
    cfg: DaggerConfig,
    r: int,
    families: tuple[str, ...],
    *,
    policy: str,
    data: Path,
    env_options: tuple[tuple[str, Any], ...],
) -> dict[str, Any]:
    """Round r's labelled rollouts of `policy`, appended to `data` (only the seeds it does not hold yet)."""
    with EpisodeDataset(data) as ds:
        embodiment = ds.embodiment
    assert embodiment is not None
    jobs = make_jobs(
        cfg.suite,
        families,
        episodes_per_family=cfg.episodes_per_task,
        split=cfg.split,
        first_seed=cfg.seed + r * ROUND_SEEDS,
        image_size=embodiment.image_size,
        env_options=env_options,
    )
    writer = DatasetWriter(
        data, embodiment=embodiment, suite=cfg.suite, features=suite_features(get_suite(cfg.suite))
    )
    if cfg.mode == "hg":
        log = Path(cfg.out) / f"rollouts_{r}.jsonl"
        kept = collect_corrections(
            jobs,
            PolicyActorFactory(policy),
            suite_labeller,
            Takeover(tolerance=cfg.tolerance),
            writer=writer,
            data=data,
            log=log,
            round_=r,
            workers=cfg.workers,
            control_hz=embodiment.control_hz,
        )
        compute_and_store(data)
        return {"round": r, "beta": 0.0, "policy": policy, **kept}
    have = _round_seeds(data, r)
    todo = [j for j in jobs if (j.family, j.seed) not in have]
    beta = cfg.beta_of(r)
    for _, result in iter_episodes(
        todo,
        PolicyActorFactory(policy),
        workers=cfg.workers,
        labeller=suite_labeller,
        beta=beta,
        record_steps=True,
        isolate=True,
    ):
        writer.append(_labelled_episode(result, r=r, beta=beta, control_hz=embodiment.control_hz))
    compute_and_store(data)
    # The round's figures from the file, so a resumed round reports all its episodes.
    with EpisodeDataset(data) as ds:
        mine = [info for info in ds.infos if info.meta.get("dagger_round") == r]
    steps = sum(info.length for info in mine)
    acted = sum(int(info.meta.get("expert_acted_steps", 0)) for info in mine)
    return {
        "round": r,
        "beta": beta,
        "policy": policy,
        "episodes": len(mine),
        "resumed_with": len(jobs) - len(todo),
        "labelled_steps": steps,
        "expert_acted_share": acted / steps if steps else 0.0,
        "rollout_success": _mean([info.success for info in mine]),
    }


def _labelled_episode(result: EpisodeResult, *, r: int, beta: float, control_hz: float) -> Any:
    """The rollout as an episode whose actions are the expert's labels of the visited states.

    Its `success` is the mixed rollout's outcome; the labels are the expert's either way, and the
    sampler trains on every episode, failed ones too (that is where DAgger's labels matter most).
    """
    data = result.steps_data
    assert data is not None and "label" in data
    labelled = dataclasses.replace(result, steps_data={**data, "action": data["label"]})
    episode = result_to_episode(labelled, control_hz=control_hz)
    acted = int(np.sum(data["labeller_acted"]))
    episode.meta.update({"dagger_round": r, "beta": beta, "expert_acted_steps": acted})
    return episode


def _mean(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def _round_seeds(data: Path, r: int) -> set[tuple[str, int]]:
    with EpisodeDataset(data) as ds:
        return {
            (info.family, int(info.meta["seed"])) for info in ds.infos if info.meta.get("dagger_round") == r
        }


def _recipe(checkpoint: Path) -> TrainConfig:
    """The training config of the run that made `checkpoint` (its `train_config.json`)."""
    if not (checkpoint / "config.json").is_file():
        raise FileNotFoundError(not_a_checkpoint(checkpoint))
    path = checkpoint.parent / "train_config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: DAgger fine-tunes with the recipe of the run that made {checkpoint}"
        )
    return from_dict(TrainConfig, json.loads(path.read_text()), where=str(path))


def _check_same_run(path: Path, cfg: DaggerConfig) -> None:
    now = json.loads(json.dumps(to_dict(cfg)))
    if path.exists():
        saved = json.loads(path.read_text())
        diff = sorted(k for k in set(saved) | set(now) if k != "rounds" and saved.get(k) != now.get(k))
        if diff:
            raise ValueError(f"{path.parent} holds a DAgger run with other settings ({diff}); choose --out")
    _write_json(path, now)


def _read_state(out: Path) -> dict[str, Any]:
    path = out / "dagger_state.json"
    return json.loads(path.read_text()) if path.exists() else {"rounds": []}


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
