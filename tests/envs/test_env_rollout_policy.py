"""The rollout engine with a policy: batched model calls across envs give the unbatched results.

A tiny real checkpoint (untrained, word-vocabulary language: nothing to download) drives real tabletop
envs through the deployed stack (chunk broker, safety filter). Batched inference differs from
unbatched only by float rounding, which the physics amplifies slowly, so the first steps' actions must
agree closely and every episode must end the same way.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from vla.rollout import make_jobs, run_episodes
from vla.rollout.gather import SharedModel
from vla.rollout.policy_actor import PolicyActorFactory
from vla.types import Observation

SIZE = (16, 16)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    import torch

    from vla.envs import get_suite
    from vla.models import build_policy
    from vla.presets import get_preset
    from vla.types import DatasetStats, FeatureStats

    torch.manual_seed(0)
    emb = get_suite("tabletop").embodiment(SIZE)
    space = emb.action_space()
    lo, hi = space.low.astype(np.float64), space.high.astype(np.float64)
    s = emb.state_dim

    def feature(a: np.ndarray, b: np.ndarray) -> FeatureStats:
        return FeatureStats(mean=(a + b) / 2, std=(b - a) / 4, min=a, max=b, q01=a, q99=b, count=1)

    cfg = get_preset("default").override(
        {
            "image_size": list(SIZE),
            "action_horizon": 4,
            "vision.channels": [8, 8],
            "vision.strides": [2, 2],
            "vision.num_keypoints": 4,
            "fusion.dim": 32,
            "fusion.state_hidden": 32,
            "head.hidden": 32,
            "head.ensemble": 1,
            "language.kind": "vocab",
            "language.vocab": ["touch", "pick", "up", "the", "red", "blue", "cube"],
        }
    )
    stats = DatasetStats(state=feature(-np.ones(s), np.ones(s)), action=feature(lo, hi))
    out = tmp_path_factory.mktemp("tiny") / "checkpoint"
    build_policy(cfg, embodiment=emb, stats=stats).save_pretrained(out)
    return str(out)


def _first_obs(family: str, seed: int) -> Observation:
    from vla.envs import get_suite

    env = get_suite("tabletop").make(family, image_size=SIZE)
    try:
        o, _ = env.reset(seed=seed)
    finally:
        env.close()
    images = {k: v[None, None] for k, v in o["images"].items()}
    return Observation(images=images, state=o["state"][None, None], instruction=[o["instruction"]])


def test_shared_model_gathers_the_open_episodes_into_one_call(checkpoint: str) -> None:
    from vla.models import Policy

    policy = Policy.from_pretrained(checkpoint)
    model = SharedModel(policy)
    requests = [_first_obs("touch", 0), _first_obs("pick_up", 1), _first_obs("touch", 2)]
    alone = [policy.predict(o).actions for o in requests]
    got: dict[int, np.ndarray] = {}
    opened = threading.Barrier(len(requests))

    def lane(i: int) -> None:
        model.open()
        opened.wait()  # every lane has its episode open before any asks
        got[i] = model.predict(requests[i]).actions
        model.close()

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert (model.calls, model.requests) == (1, 3)
    for i, a in enumerate(alone):
        assert got[i].shape == (1, 4, 7)
        np.testing.assert_allclose(got[i], a, atol=1e-5)  # its own row, not a neighbour's
    # A lane without an open episode is never waited for.
    assert model.predict(requests[0]).actions.shape == (1, 4, 7) and model.calls == 2
    with pytest.raises(ValueError, match="one request"):
        model.predict(Observation(images={}, state=np.zeros((2, 1, 22), np.float32), instruction=["a", "b"]))


def test_batched_and_unbatched_rollouts_agree(checkpoint: str) -> None:
    jobs = make_jobs("tabletop", ["touch", "pick_up"], episodes_per_family=2, image_size=SIZE, first_seed=5)
    actor = PolicyActorFactory(checkpoint)
    one = run_episodes(jobs, actor, record_steps=True)
    batched = run_episodes(jobs, actor, envs_per_worker=4, record_steps=True)
    for a, b in zip(one, batched, strict=True):
        assert (a.success, a.steps) == (b.success, b.steps)
        assert a.steps_data is not None and b.steps_data is not None
        np.testing.assert_allclose(a.steps_data["action"][:4], b.steps_data["action"][:4], atol=1e-4)
        # steps_per_chunk = H / 2 = 2: a model call every other step, each timed.
        assert len(a.latencies_ms) == len(b.latencies_ms) == -(-a.steps // 2)
        assert all(ms > 0 for ms in b.latencies_ms)
        assert a.jerk > 0 and np.isfinite(b.jerk)
    assert sum(r.interventions for r in one) > 0  # an untrained policy pushes against the limits


def test_evaluate_batched_in_workers_keeps_results_and_report(checkpoint: str, tmp_path: Path) -> None:
    from vla.config import EvalConfig
    from vla.evaluate import evaluate

    def run(name: str, **kw: int) -> dict:
        cfg = EvalConfig(
            checkpoint=checkpoint,
            families=("touch",),
            episodes_per_task=3,
            videos_per_family=1,
            out=str(tmp_path / name),
            **kw,
        )
        return evaluate(cfg)

    plain = run("plain", workers=1)
    batched = run("batched", workers=2, envs_per_worker=2)
    key = [(r["seed"], r["success"], r["length"]) for r in plain["rollouts"]]
    assert key == [(r["seed"], r["success"], r["length"]) for r in batched["rollouts"]]
    assert [r["seed"] for r in plain["rollouts"]] == [100_000, 100_001, 100_002]
    assert batched["config"]["envs_per_worker"] == 2 and batched["episodes_per_s"] > 0
    by_reason = batched["safety_interventions_by_reason"]
    assert sum(by_reason.values()) == batched["safety_interventions"] > 0
    assert batched["per_family"]["touch"]["interventions_by_reason"] == by_reason
    assert batched["latency_ms"]["calls"] == sum(-(-r["length"] // 2) for r in batched["rollouts"])
    written = json.loads((tmp_path / "batched" / "results.json").read_text())
    assert written["safety_interventions_by_reason"] == by_reason
    page = (tmp_path / "batched" / "report.html").read_text()
    assert all(f"{reason} {n}" in page for reason, n in by_reason.items())
    assert len(list((tmp_path / "batched" / "videos").glob("touch_seed100000_*.mp4"))) == 1
