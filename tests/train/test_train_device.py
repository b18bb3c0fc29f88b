"""Device, backend and autocast per rank (`vla.train_device`), and bf16 autocast in the training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla.config import TrainConfig
from vla.data.reader import EpisodeDataset
from vla.data.sampler import WindowConfig, WindowDataset
from vla.models import build_policy
from vla.models.language import build_vocab
from vla.train import _LossModule, build_policy_config, make_optimizer, train, train_step
from vla.train_device import resolve_placement


@pytest.fixture
def gpus(monkeypatch):
    """Makes torch report `n` CUDA devices (bf16 capable unless told otherwise); nothing runs on them."""

    def fake(n: int, *, bf16: bool = True) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)

    return fake


def test_cpu_single_process_and_gloo_ranks(gpus):
    gpus(0)
    one = resolve_placement("auto", "auto", env={})
    assert (one.device, one.backend, one.world_size, one.amp_dtype) == ("cpu", "", 1, None)
    ranked = resolve_placement("auto", "auto", env={"WORLD_SIZE": "2", "LOCAL_RANK": "1", "RANK": "1"})
    assert (ranked.device, ranked.backend, ranked.distributed) == ("cpu", "gloo", True)
    # bf16 autocast runs on a CPU only when asked for (every trained figure is fp32: docs/measured.md).
    assert resolve_placement("cpu", "bf16", env={}).amp_dtype == torch.bfloat16


def test_each_torchrun_rank_takes_its_own_gpu_with_nccl_and_bf16(gpus):
    gpus(4)
    for local in range(4):
        env = {"WORLD_SIZE": "8", "RANK": str(4 + local), "LOCAL_RANK": str(local)}
        for device in ("auto", "cuda"):
            p = resolve_placement(device, "auto", env=env)
            assert (p.device, p.cuda_index, p.backend, p.amp_dtype) == (
                f"cuda:{local}",
                local,
                "nccl",
                torch.bfloat16,
            )
    assert resolve_placement("cuda", "off", env={"WORLD_SIZE": "2", "LOCAL_RANK": "1"}).amp_dtype is None
    single = resolve_placement("cuda:3", "auto", env={})
    assert (single.device, single.backend) == ("cuda:3", "")
    assert resolve_placement("cpu", "auto", env={}).device == "cpu"  # asked for, even with GPUs


def test_placement_refuses_what_cannot_work(gpus):
    gpus(2)
    with pytest.raises(ValueError, match=r"cuda:2 does not exist \(LOCAL_RANK=2\): 2 CUDA device"):
        resolve_placement("cuda", "auto", env={"WORLD_SIZE": "3", "LOCAL_RANK": "2"})
    with pytest.raises(ValueError, match="under torchrun every rank trains on cuda:<LOCAL_RANK>"):
        resolve_placement("cuda:1", "auto", env={"WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="LOCAL_RANK='x' must be an integer"):
        resolve_placement("auto", "auto", env={"LOCAL_RANK": "x"})
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        resolve_placement("gpu", "auto", env={})
    with pytest.raises(ValueError, match="amp must be one of"):
        resolve_placement("auto", "fp16", env={})
    gpus(1, bf16=False)
    assert resolve_placement("cuda", "auto", env={}).amp_dtype is None  # auto: fp32 on an old GPU
    with pytest.raises(ValueError, match="does not support bfloat16"):
        resolve_placement("cuda", "bf16", env={})
    gpus(0)
    with pytest.raises(ValueError, match=r"torch\.cuda\.is_available\(\) is False"):
        resolve_placement("cuda", "auto", env={})


def test_bf16_autocast_runs_the_forward_in_bf16_and_keeps_fp32_weights(toy_dataset, tiny):
    torch.set_num_threads(1)
    cfg = TrainConfig(dataset=str(toy_dataset), policy_overrides=tiny, batch_size=8)
    with EpisodeDataset(toy_dataset) as reader:
        pcfg = build_policy_config(cfg).override({"language.vocab": build_vocab(reader.instructions)})
        policy = build_policy(pcfg, embodiment=reader.embodiment, stats=reader.stats)
        batch = WindowDataset(reader, config=WindowConfig(obs_horizon=1, action_horizon=4)).get_batch(
            np.arange(8)
        )
    seen: list[torch.dtype] = []
    linear = next(m for m in policy.head.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    optimizer = make_optimizer(policy, cfg)
    out = train_step(_LossModule(policy), batch, optimizer, lr=1e-3, grad_clip=1.0, amp=torch.bfloat16)
    assert np.isfinite(out["loss"])
    assert seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in policy.parameters())
    assert any(not torch.equal(before[n], p) for n, p in policy.named_parameters())
    seen.clear()
    train_step(_LossModule(policy), batch, optimizer, lr=1e-3, grad_clip=1.0)
    assert seen and set(seen) == {torch.float32}  # without amp the same step runs in fp32


def test_train_reports_where_it_ran(toy_dataset, tiny, tmp_path, gpus):
    gpus(0)
    torch.set_num_threads(1)
    cfg = TrainConfig(
        dataset=str(toy_dataset),
        out=str(tmp_path / "run"),
        policy_overrides=tiny,
        steps=2,
        batch_size=8,
        val_every=0,
        threads=1,
        amp="bf16",
    )
    summary = train(cfg, progress=False)
    assert (summary["device"], summary["amp"]) == ("cpu", "bf16")
    assert np.isfinite(summary["metrics"]["loss"])
