"""The inference engine on a real saved checkpoint: backends agree with eager within stated tolerances,
ONNX export works from the CLI, and the engine drives the server and the safe controller end to end."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import onnx
import pytest
import torch
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from typer.testing import CliRunner

from vla.models import Policy
from vla.runtime import make_safe_controller
from vla.runtime.engine import Engine, EngineConfig
from vla.runtime.onnx_export import ATOL, export_onnx
from vla.runtime.server import PolicyServer, ServeConfig
from vla.types import Observation

pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")

# int8 dynamic quantization: within 5% of each action dimension's normalized half-range (q01..q99).
INT8_REL_TOL = 0.05


def _obs(rt, seed: int = 0, batch: int | None = None) -> Observation:
    req = rt.make_obs(np.random.default_rng(seed))
    obs = Observation(
        images={c: req[f"images/{c}"] for c in ("scene", "wrist")},
        state=req["state"],
        instruction=req["prompt"],
    )
    if batch is None:
        return obs
    b = obs.as_batch()
    return Observation(
        images={k: np.repeat(v, batch, 0) for k, v in b.images.items()},
        state=np.repeat(b.state, batch, 0) + np.arange(batch, dtype=np.float32)[:, None, None] * 0.1,
        instruction=["open the drawer", "close the drawer", "push the button"][:batch],
    )


@pytest.fixture(scope="module")
def eager(tiny_checkpoint) -> Engine:
    return Engine.from_checkpoint(tiny_checkpoint)


def test_eager_matches_policy_and_reports_spec(eager, tiny_checkpoint, rt):
    policy = Policy.from_pretrained(tiny_checkpoint)
    obs = _obs(rt)
    np.testing.assert_array_equal(eager.predict(obs).actions, policy.predict(obs).actions)
    spec = eager.spec
    assert spec.action_space == "ee_delta" and spec.action_horizon == 4 and spec.image_size == rt.IMAGE_SIZE
    assert spec.stats_sha256 == hashlib.sha256((tiny_checkpoint / "stats.json").read_bytes()).hexdigest()
    assert torch.get_num_threads() == 1


def _half_range(engine: Engine) -> np.ndarray:
    return (np.asarray(engine.stats.action.q99) - np.asarray(engine.stats.action.q01)) / 2


def test_int8_within_tolerance(eager, tiny_checkpoint, rt):
    q = Engine.from_checkpoint(tiny_checkpoint, EngineConfig(backend="int8"))
    n_quant = sum(
        type(m).__name__ == "Linear" and "quantized" in type(m).__module__ for m in q._core.modules()
    )
    assert n_quant >= 3  # the Linear layers really are int8 now
    obs = _obs(rt, batch=3)
    ref, got = eager.predict(obs).actions, q.predict(obs).actions
    err = np.abs(got - ref) / _half_range(eager)
    assert err.max() <= INT8_REL_TOL, err.max()
    assert not np.array_equal(got, ref)


def test_onnx_backend_matches_eager(eager, tiny_checkpoint, rt, tmp_path):
    onnx_engine = Engine.from_checkpoint(tiny_checkpoint, EngineConfig(backend="onnx"))
    for batch in (None, 3):  # dynamic batch, and instructions of different token lengths
        obs = _obs(rt, seed=1, batch=batch)
        ref, got = eager.predict(obs), onnx_engine.predict(obs)
        np.testing.assert_allclose(got.actions, ref.actions, atol=ATOL, rtol=0)
        np.testing.assert_allclose(got.confidence, ref.confidence, atol=1e-4)
    small = _obs(rt)
    bad = Observation(images={k: v[:16] for k, v in small.images.items()}, state=small.state, instruction="x")
    with pytest.raises(ValueError, match=r"this backend takes images at config\.image_size"):
        onnx_engine.predict(bad)


def test_cli_export_onnx(tiny_checkpoint, tmp_path):
    from vla.cli.main import app

    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(
        app, ["export", "--checkpoint", str(tiny_checkpoint), "--format", "onnx", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    model = onnx.load(str(out))
    inputs = {i.name for i in model.graph.input}
    assert {"image_scene", "image_wrist", "state", "lang_sentence"} <= inputs
    assert [o.name for o in model.graph.output] == ["actions", "confidence"]


def test_compile_backend_matches(eager, tiny_checkpoint, rt):
    # aot_eager exercises the torch.compile path (graph capture) in seconds; inductor is timed in benchmarks.
    comp = Engine.from_checkpoint(
        tiny_checkpoint, EngineConfig(backend="compile", compile_backend="aot_eager")
    )
    obs = _obs(rt, seed=2)
    np.testing.assert_allclose(comp.predict(obs).actions, eager.predict(obs).actions, atol=1e-5)


def test_sampling_head_export_is_refused(rt, tmp_path):
    policy = rt.build_tiny_policy(**{"head.kind": "flow", "head.sample_steps": 2, "head.denoiser_depth": 1})
    with pytest.raises(ValueError, match="deterministic heads"):
        export_onnx(policy, tmp_path / "flow.onnx")


def test_server_end_to_end_with_real_checkpoint(eager, rt):
    server = PolicyServer(eager, eager.spec, ServeConfig(port=0))
    port = server.start()
    try:
        client = WebsocketClientPolicy("127.0.0.1", port)
        meta = client.get_server_metadata()
        assert meta["stats_sha256"] == eager.stats_sha256
        assert meta["execute_steps"] == eager.config.steps_per_chunk  # how often a client re-plans
        obs = rt.make_obs()
        reply = client.infer(
            {
                "observation/image": obs["images/scene"],
                "observation/wrist_image": obs["images/wrist"],
                "observation/state": obs["state"],
                "prompt": "open the drawer",
            }
        )
        space = eager.embodiment.action_space()
        assert reply["actions"].shape == (4, 7)
        assert np.all(reply["actions"] >= space.low - 1e-6) and np.all(reply["actions"] <= space.high + 1e-6)
        assert 0.0 <= reply["confidence"] <= 1.0
        client._ws.close()
    finally:
        server.stop()


def test_safe_controller_drives_real_engine(eager, rt):
    ctl = make_safe_controller(eager, mode="ensemble", decay=0.1)
    obs = rt.make_obs()
    env_obs = {
        "images": {"scene": obs["images/scene"], "wrist": obs["images/wrist"]},
        "state": obs["state"],
        "instruction": "go",
    }
    actions = np.stack([ctl.act(env_obs) for _ in range(5)])
    assert actions.shape == (5, 7) and np.all(np.isfinite(actions))
    assert not ctl.failed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_vla_serve_command(tiny_checkpoint, rt):
    """`vla serve` in its own process: health check, token, then openpi-client gets filtered actions."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [
        sys.executable,
        "-m",
        "vla.cli.main",
        "serve",
        "--checkpoint",
        str(tiny_checkpoint),
        "--port",
        str(port),
        "--token",
        "t0k",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "vla serve did not come up within 90 s"
                time.sleep(0.25)
        client = WebsocketClientPolicy("127.0.0.1", port, api_key="t0k")
        assert client.get_server_metadata()["safety_filter"] is True
        reply = client.infer(rt.make_obs())
        assert reply["actions"].shape == (4, 7) and np.all(np.isfinite(reply["actions"]))
        client._ws.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_bench_latency_command_prints_table_and_json(tiny_checkpoint):
    from vla.cli.main import app

    args = [
        "bench",
        "latency",
        "--checkpoint",
        str(tiny_checkpoint),
        "--backends",
        "eager,onnx",
        "--calls",
        "3",
    ]
    args += ["--server-calls", "3", "--load-clients", "2", "--load-seconds", "0.3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    for key in ("eager_ms_median", "onnx_ms_median", "server_ms_median", "load_throughput_rps"):
        assert summary[key] > 0, key
    assert "server load, 2 clients" in result.output


def test_onnx_file_from_another_checkpoint_is_refused(tiny_checkpoint, tmp_path, rt):
    other = rt.build_tiny_policy()
    with torch.no_grad():
        next(other.head.parameters()).add_(0.1)  # same config and stats, different weights
    path = export_onnx(other, tmp_path / "other.onnx")
    with pytest.raises(ValueError, match="vla_weights_sha256"):
        Engine.from_checkpoint(tiny_checkpoint, EngineConfig(backend="onnx", onnx_path=str(path)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Engine.from_checkpoint(
            tiny_checkpoint, EngineConfig(backend="onnx", onnx_path=str(tmp_path / "nope.onnx"))
        )
