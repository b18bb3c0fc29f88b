"""Windows, pads at episode edges, split by episode, balanced sampling, and statistics vs numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vla.data.episode import Episode
from vla.data.reader import EpisodeDataset
from vla.data.sampler import (
    WindowConfig,
    WindowDataset,
    balanced_sampler,
    collate_windows,
    split_episodes,
)
from vla.data.stats import compute_and_store


def test_data_windows_pad_at_episode_edges(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, eps = small_dataset
    ds = WindowDataset(path, config=WindowConfig(obs_horizon=3, action_horizon=4))
    assert len(ds) == sum(len(e) for e in eps)
    # Episode 1 (push, 3 steps) starts at global step 5; its state[:, 0] / actions[:, 0] = 1000 + t.
    b = ds.get_batch([5, 6, 7])
    assert b.images["scene"].shape == (3, 3, 12, 16, 3)
    assert b.images["scene"].dtype == torch.uint8
    assert b.state.shape == (3, 3, 5)
    assert b.state.dtype == torch.float32
    assert b.actions.shape == (3, 4, 3)
    assert b.state[:, :, 0].tolist() == [[1000, 1000, 1000], [1000, 1000, 1001], [1000, 1001, 1002]]
    assert b.obs_pad.tolist() == [[True, True, False], [True, False, False], [False, False, False]]
    assert b.actions[:, :, 0].tolist() == [
        [1000, 1001, 1002, 1002],
        [1001, 1002, 1002, 1002],
        [1002, 1002, 1002, 1002],
    ]
    assert b.action_pad.tolist() == [
        [False, False, False, True],
        [False, False, True, True],
        [False, True, True, True],
    ]
    # Padded frames repeat the edge frame exactly.
    frames = eps[1].images["wrist"]
    np.testing.assert_array_equal(b.images["wrist"][0].numpy(), frames[[0, 0, 0]])
    np.testing.assert_array_equal(b.images["wrist"][2].numpy(), frames[[0, 1, 2]])
    assert b.instruction == [eps[1].instruction] * 3
    assert b.family == ["push"] * 3


def test_data_windows_without_cache_match_cached(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, _ = small_dataset
    cfg = WindowConfig(obs_horizon=2, action_horizon=3)
    cached = WindowDataset(path, config=cfg)
    partial = WindowDataset(
        path, config=WindowConfig(obs_horizon=2, action_horizon=3, cache_bytes=10 * 12 * 16 * 3 * 2)
    )
    assert cached.fully_cached
    assert not partial.fully_cached
    assert 0 < partial.n_cached_steps < len(partial)
    idx = np.random.default_rng(1).permutation(len(cached))
    a, b = cached.get_batch(idx), partial.get_batch(idx)
    for cam in a.images:
        assert torch.equal(a.images[cam], b.images[cam])
    assert torch.equal(a.actions, b.actions)
    assert torch.equal(a.obs_pad, b.obs_pad)


def test_data_dataloader_batches(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, _ = small_dataset
    ds = WindowDataset(path, config=WindowConfig(obs_horizon=2, action_horizon=4), episodes=[0, 2])
    assert len(ds) == 14
    loader = DataLoader(ds, batch_size=4, shuffle=True, collate_fn=collate_windows)
    batches = list(loader)
    assert [len(b) for b in batches] == [4, 4, 4, 2]
    seen = torch.cat([b.state[:, -1, 0] for b in batches]).sort().values.tolist()
    assert seen == sorted([*range(5)] + [2000 + t for t in range(9)])
    single = collate_windows([ds[0], ds[13]])
    assert single.state.shape == (2, 2, 5)
    assert single.state[1, -1, 0] == 2008


def test_data_split_by_episode_is_deterministic_and_stratified() -> None:
    families = ["a"] * 10 + ["b"] * 4 + ["c"]
    train, val = split_episodes(families, val_fraction=0.2, seed=3)
    assert sorted(train + val) == list(range(15))
    assert not set(train) & set(val)
    assert sum(families[i] == "a" for i in val) == 2
    assert sum(families[i] == "b" for i in val) == 1
    assert "c" not in [families[i] for i in val]
    assert split_episodes(families, val_fraction=0.2, seed=3) == (train, val)
    assert split_episodes(families, val_fraction=0.2, seed=4) != (train, val)
    with pytest.raises(ValueError, match="val_fraction"):
        split_episodes(families, val_fraction=1.0, seed=0)


def test_data_windows_never_cross_split(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, _ = small_dataset
    with EpisodeDataset(path) as reader:
        train, val = split_episodes(reader.families, val_fraction=0.34, seed=0)
    tr = WindowDataset(path, config=WindowConfig(obs_horizon=2, action_horizon=16), episodes=train)
    va = WindowDataset(path, config=WindowConfig(obs_horizon=2, action_horizon=16), episodes=val)
    ep_ids = lambda ds: set((ds.get_batch(np.arange(len(ds))).actions[..., 0] // 1000).flatten().tolist())  # noqa: E731
    assert ep_ids(tr) == set(train)
    assert ep_ids(va) == set(val)


def test_data_balanced_sampler_equalizes_families(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, _ = small_dataset
    ds = WindowDataset(path)
    w = ds.family_weights()
    assert w.sum() == pytest.approx(1.0)
    sampler = balanced_sampler(ds, num_samples=6000, seed=0)
    fams = np.asarray(ds.families)[ds.ep_of_step[np.fromiter(sampler, dtype=np.int64)]]
    counts = {f: int((fams == f).sum()) for f in ("pick", "push", "open")}
    assert all(1800 < c < 2200 for c in counts.values()), counts


def test_data_stats_match_numpy(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, eps = small_dataset
    stats = compute_and_store(path)
    state = np.concatenate([e.state for e in eps]).astype(np.float64)
    actions = np.concatenate([e.actions for e in eps]).astype(np.float64)
    for feat, x in ((stats.state, state), (stats.action, actions)):
        np.testing.assert_allclose(feat.mean, x.mean(0))
        np.testing.assert_allclose(feat.std, x.std(0))
        np.testing.assert_array_equal(feat.min, x.min(0))
        np.testing.assert_array_equal(feat.max, x.max(0))
        np.testing.assert_allclose(feat.q01, np.percentile(x, 1, axis=0))
        np.testing.assert_allclose(feat.q99, np.percentile(x, 99, axis=0))
        assert feat.count == len(x)
    with EpisodeDataset(path) as ds:
        assert ds.require_stats().to_dict() == stats.to_dict()
    assert WindowDataset(path).stats is not None


def test_data_window_config_validation() -> None:
    with pytest.raises(ValueError, match="obs_horizon must be >= 1"):
        WindowConfig(obs_horizon=0)
    with pytest.raises(ValueError, match="action_horizon"):
        WindowConfig(action_horizon=0)


def test_data_subgoals_follow_gripper_flips() -> None:
    from vla.data.subgoals import episode_subgoals

    n = 10
    state = np.zeros((n, 5), dtype=np.float32)
    state[:, 3] = np.arange(n)  # ee_pos x = step index, so a goal names the step it came from
    actions = np.zeros((n, 3), dtype=np.float32)
    actions[4:7, 2] = 1.0  # closes at step 4, opens again at step 7
    goal = episode_subgoals(state, actions, ee=slice(3, 5), gripper=slice(2, 3))
    assert goal.shape == (n, 2)
    np.testing.assert_array_equal(goal[:, 0], [4, 4, 4, 4, 7, 7, 7, 9, 9, 9])


def test_data_windows_carry_subgoals(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, episodes = small_dataset
    ds = WindowDataset(path)
    goal = ds.step_features["subgoal"]
    assert goal.shape == (len(ds), 2)
    batch = ds.get_batch(np.arange(4))
    assert tuple(batch.features["subgoal"].shape) == (4, 2)
    # Every sub-goal is an ee_pos the episode visits.
    first = episodes[0]
    visited = {tuple(r) for r in first.state[:, 3:5].tolist()}
    assert all(tuple(g) in visited for g in goal[: first.state.shape[0]].tolist())


def test_data_windows_carry_declared_episode_features(tmp_path: Path, rng, embodiment, episode_factory) -> None:
    from vla.data.writer import DatasetWriter
    from vla.features import Feature, FeaturePart

    # A suite-neutral declaration: the core knows no suite's feature by name.
    goal = Feature("goal_spot", "episode", (FeaturePart("where", "position", 3), FeaturePart("w", "value", 1)), masked=True)
    make_episode = episode_factory
    path = tmp_path / "feat.h5"
    writer = DatasetWriter(path, embodiment=embodiment, suite="synthetic", env_args={}, features=(goal,))
    for i, n in enumerate((4, 6)):
        ep = make_episode(rng, n, index=i)
        ep.meta["goal_spot"] = [float(i)] * 3 + [0.5]
        ep.meta["goal_spot_mask"] = [1.0] * 3 + [0.0]
        writer.append(ep)
    ds = WindowDataset(path)
    assert ds.features == (goal,)
    b = ds.get_batch([0, 3, 4, 9])  # two windows of each episode: every window has its episode's value
    assert b.features["goal_spot"].shape == b.features["goal_spot_mask"].shape == (4, 4)
    assert b.features["goal_spot"][:, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert b.features["goal_spot"][:, 3].tolist() == [0.5] * 4
    assert b.features["goal_spot_mask"][:, 3].sum() == 0
    assert collate_windows([ds[0], ds[5]]).features["goal_spot"][:, 0].tolist() == [0.0, 1.0]
    # A dataset that declares nothing carries nothing (its auxiliary losses are off).
    plain = tmp_path / "plain.h5"
    w2 = DatasetWriter(plain, embodiment=embodiment, suite="synthetic", env_args={})
    w2.append(make_episode(rng, 3))
    assert "goal_spot" not in WindowDataset(plain).get_batch([0]).features


def test_data_episode_feature_of_the_wrong_size_is_an_error(tmp_path: Path, rng, embodiment, episode_factory) -> None:
    from vla.data.writer import DatasetWriter
    from vla.features import Feature, FeaturePart

    feat = Feature("spot", "episode", (FeaturePart("where", "position", 3),))
    path = tmp_path / "bad.h5"
    writer = DatasetWriter(path, embodiment=embodiment, suite="synthetic", env_args={}, features=(feat,))
    ep = episode_factory(rng, 4)
    ep.meta["spot"] = [1.0, 2.0]
    writer.append(ep)
    with pytest.raises(ValueError, match=r"episode 0 meta 'spot': feature 'spot' must hold 3 values"):
        WindowDataset(path)
