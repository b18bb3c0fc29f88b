"""HG-DAgger's data (Kelly et al., 2019): the expert's corrections, one episode per stretch it drove.

A round rolls the policy out with the suite's labeller watching (`vla.rollout.takeover`). Where the
labeller took over, its actions were executed and are the labels; everywhere else the policy drove and
nothing is kept: HG-DAgger trains on corrections, not on the expert's opinion of every state. Each
maximal run of expert-driven steps becomes an episode of its own (frames, state, the expert's actions),
so a training window never mixes the policy's driving into an expert chunk; action chunks past a
stretch's end are padded and masked as at any episode's end.

Resuming: every finished rollout appends a line to the round's log (`rollouts_<r>.jsonl`, fsynced) after
its stretches are in the dataset. A resumed round reruns the rollouts the log lacks and skips the
stretches of those the dataset already holds (same seed, same stretch index: a rerun is the same
rollout), so a kill between two stretches neither loses nor doubles one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.collect import result_to_episode
from vla.data.episode import Episode
from vla.data.reader import EpisodeDataset
from vla.data.writer import DatasetWriter
from vla.rollout import EpisodeJob, EpisodeResult, iter_episodes
from vla.rollout.loop import ActorFactory
from vla.rollout.takeover import Takeover


def stretches(driven: np.ndarray) -> list[tuple[int, int]]:
    """The maximal runs [start, end) of True in bool [N] `driven`."""
    d = np.concatenate([[False], np.asarray(driven, dtype=bool), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(d))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def corrections(result: EpisodeResult, *, round_: int, control_hz: float) -> list[Episode]:
    """The expert-driven stretches of a takeover rollout, each as an episode labelled with the expert's
    actions; their meta names the round, the stretch index and where it started in the rollout."""
    data = result.steps_data
    assert data is not None and "label" in data
    episodes = []
    for k, (a, b) in enumerate(stretches(data["labeller_acted"])):
        part = {
            "images": {cam: v[a:b] for cam, v in data["images"].items()},
            "state": data["state"][a:b],
            "action": data["label"][a:b],
            "reward": data["reward"][a:b],
        }
        episode = result_to_episode(dataclasses.replace(result, steps_data=part), control_hz=control_hz)
        episode.meta.update({"dagger_round": round_, "beta": 0.0, "stretch": k, "stretch_start": a})
        episodes.append(episode)
    return episodes


def collect_corrections(
    jobs: list[EpisodeJob],
    make_actor: ActorFactory,
    make_labeller: ActorFactory,
    takeover: Takeover,
    *,
    writer: DatasetWriter,
    data: Path,
    log: Path,
    round_: int,
    workers: int,
    control_hz: float,
) -> dict[str, Any]:
    """Runs the round's rollouts the log lacks, appends their corrections; returns the round's figures
    (over every rollout of the round, also those of an interrupted earlier run)."""
    done = _read_log(log)
    held = _held_stretches(data, round_)
    todo = [j for j in jobs if (j.family, j.seed) not in done]
    for _, result in iter_episodes(
        todo,
        make_actor,
        workers=workers,
        labeller=make_labeller,
        takeover=takeover,
        record_steps=True,
        isolate=True,
    ):
        key = (result.job.family, int(result.job.seed))
        parts = corrections(result, round_=round_, control_hz=control_hz)
        for episode in parts:
            if (*key, episode.meta["stretch"]) not in held:
                writer.append(episode)
        line = {
            "family": key[0],
            "seed": key[1],
            "success": bool(result.success),
            "steps": int(result.steps),
            "expert_steps": int(sum(len(e.actions) for e in parts)),
            "stretches": len(parts),
        }
        _append_line(log, line)
        done[key] = line
    rows = list(done.values())
    steps = sum(r["steps"] for r in rows)
    expert = sum(r["expert_steps"] for r in rows)
    return {
        "episodes": len(rows),
        "resumed_with": len(jobs) - len(todo),
        "labelled_steps": expert,
        "visited_steps": steps,
        "corrections": sum(r["stretches"] for r in rows),
        "expert_acted_share": expert / steps if steps else 0.0,
        "rollout_success": float(np.mean([r["success"] for r in rows])) if rows else None,
    }


def _read_log(log: Path) -> dict[tuple[str, int], dict[str, Any]]:
    if not log.exists():
        return {}
    text = log.read_text()
    if text and not text.endswith("\n"):  # a line torn by a kill mid-write: cut it, that rollout reruns
        text = text[: text.rfind("\n") + 1]
        with open(log, "r+") as f:
            f.truncate(len(text.encode()))
    rows = {}
    for line in text.splitlines():
        row = json.loads(line)
        rows[(str(row["family"]), int(row["seed"]))] = row
    return rows


def _held_stretches(data: Path, round_: int) -> set[tuple[str, int, int]]:
    with EpisodeDataset(data) as ds:
        return {
            (info.family, int(info.meta["seed"]), int(info.meta["stretch"]))
            for info in ds.infos
            if info.meta.get("dagger_round") == round_ and "stretch" in info.meta
        }


def _append_line(log: Path, row: dict[str, Any]) -> None:
    with open(log, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
