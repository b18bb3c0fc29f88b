"""`vla bench ros2`: the node's end-to-end latency and control-rate jitter over DDS on loopback.

The node runs as its own process (`vla ros2 node`, DDS transport), as on a robot. This process plays the
robot: it publishes the embodiment's cameras (96x96 for the default suite's Panda), joint states and pose at
`rate_hz`, stamped with their publish time, and receives the commands and the node's status. The
status names the input stamp each command answered, so each command's latency is
`receive time - publish time of the images it was computed from` (one clock: same machine). The node's
period jitter comes from the tick times its status messages carry (one per tick; with the "frames"
trigger, the ticks that acted). The camera's phase against the node's timer sweeps over the run. With
`load`, the same is measured again while one busy process per core competes for the CPU.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla.runtime.ros2 import codecs
from vla.runtime.ros2.codecs import StateLayout
from vla.runtime.ros2.config import NodeConfig, camera_topic
from vla.runtime.ros2.dds import DdsTransport
from vla.runtime.ros2.qos import RELIABLE, SENSOR

NAMESPACE = "/vla_bench"
PHASE_STEPS = 8
INSTRUCTION = "pick up the red block"


@dataclass(frozen=True)
class Ros2BenchConfig:
    """What to measure.

    Attributes:
        rate_hz: the camera rate and the node's control rate.
        seconds: measured seconds per phase (idle, then loaded).
        trigger: the node's trigger ("timer" or "frames").
        load: also run a phase with one busy process per core.
        domain_id: the DDS domain (pick one no robot uses).
        warmup_s: seconds of traffic before measuring (first model calls are slow).
        start_timeout_s: how long the node may take to load and appear.
    """

    rate_hz: float = 20.0
    seconds: float = 15.0
    trigger: str = "timer"
    load: bool = True
    domain_id: int = 77
    warmup_s: float = 3.0
    start_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not 1 <= self.rate_hz <= 200:
            raise ValueError(f"rate_hz must be in [1, 200], got {self.rate_hz}")
        if self.seconds <= 0 or self.warmup_s < 0:
            raise ValueError(f"seconds must be > 0 and warmup_s >= 0, got {self.seconds}, {self.warmup_s}")
        if self.trigger not in ("timer", "frames"):
            raise ValueError(f"trigger must be 'timer' or 'frames', got '{self.trigger}'")


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class _Robot:
    """Publishes synthetic sensor data for an embodiment and collects the node's outputs."""

    def __init__(self, transport: DdsTransport, embodiment: Any, node_cfg: NodeConfig) -> None:
        self.t = transport
        self.emb = embodiment
        self.layout = StateLayout(
            embodiment, node_cfg.joints_for(len(embodiment.joint_low)), node_cfg.gripper_joints
        )
        self.cams = {
            c: transport.advertise(node_cfg.topic(camera_topic(c)), "sensor_msgs/msg/Image", SENSOR)
            for c in embodiment.cameras
        }
        self.joints = transport.advertise(
            node_cfg.topic("joint_states"), "sensor_msgs/msg/JointState", RELIABLE
        )
        self.pose = transport.advertise(node_cfg.topic("ee_pose"), "geometry_msgs/msg/PoseStamped", RELIABLE)
        self.instruction = transport.advertise(node_cfg.topic("instruction"), "std_msgs/msg/String", RELIABLE)
        from vla.runtime.ros2.codecs import CommandCodec

        codec = CommandCodec.for_embodiment(embodiment, space=None, joint_names=self.layout.joint_names)
        self.commands = transport.subscribe(node_cfg.topic(codec.topic), codec.msgtype, RELIABLE)
        self.status = transport.subscribe(
            node_cfg.topic("~/status"), "diagnostic_msgs/msg/DiagnosticArray", RELIABLE
        )
        self.command_recv: list[int] = []
        self.statuses: list[tuple[int, dict[str, str]]] = []
        rng = np.random.default_rng(0)
        h, w = embodiment.image_size
        self.images = {c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c in embodiment.cameras}
        state = np.zeros(embodiment.state_dim, np.float32)
        lo, hi = np.asarray(embodiment.joint_low), np.asarray(embodiment.joint_high)
        if self.layout.has("joint_pos"):
            state[embodiment.state_slice("joint_pos")] = (lo + hi) / 2
        if self.layout.has("ee_pos"):
            state[embodiment.state_slice("ee_pos")] = (
                np.asarray(embodiment.workspace_low) + embodiment.workspace_high
            ) / 2
        if self.layout.has("ee_quat"):
            state[embodiment.state_slice("ee_quat")] = (0.0, 1.0, 0.0, 0.0)
        self.state = state

    def ready(self) -> bool:
        return self.commands.matched() > 0 and all(p.matched() > 0 for p in self.cams.values())

    def publish(self, stamp: int) -> None:
        make = self.t.make
        for c, pub in self.cams.items():
            pub.publish(make(pub.msgtype, codecs.array_to_image(self.images[c], stamp_ns=stamp, frame_id=c)))
        if self.layout.needs_joints:
            self.joints.publish(
                make(self.joints.msgtype, self.layout.joint_state_fields(self.state, stamp_ns=stamp))
            )
        if self.layout.needs_pose:
            self.pose.publish(
                make(self.pose.msgtype, self.layout.pose_fields(self.state, stamp_ns=stamp, frame_id="base"))
            )

    def drain(self) -> None:
        for r in self.commands.take():
            self.command_recv.append(r.recv_ns)
        for r in self.status.take():
            st = r.msg.status[0]
            self.statuses.append((codecs.stamp_of(r.msg), {kv.key: kv.value for kv in st.values}))


def _phase(robot: _Robot, cfg: Ros2BenchConfig, *, seconds: float, measure: bool) -> tuple[int, int, int]:
    """Publishes at the rate for `seconds`; returns (first command index, first status index, frames).

    The camera and the node's timer are two free-running 20 Hz clocks, so with the "timer" trigger the
    latency depends on their phase (0 to one period of waiting for the tick). Every second the frames
    shift by 1/8 of a period, so a measurement covers all phases instead of one lucky or unlucky one.
    """
    c0, s0 = len(robot.command_recv), len(robot.statuses)
    period = 1.0 / cfg.rate_hz
    per_second = max(1, round(cfg.rate_hz))
    start = time.monotonic()
    frames = 0
    while time.monotonic() - start < seconds:
        robot.publish(time.time_ns())
        frames += 1
        shift = (frames // per_second) * period / PHASE_STEPS
        deadline = start + frames * period + shift
        while True:
            robot.drain()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            robot.t.wait(min(left, 0.005))
    return (c0, s0, frames) if measure else (len(robot.command_recv), len(robot.statuses), frames)


def _analyse(robot: _Robot, c0: int, s0: int, frames: int, cfg: Ros2BenchConfig) -> dict[str, Any]:
    recv = robot.command_recv
    lat, act = [], []
    for _, v in robot.statuses[s0:]:
        if v.get("state") != "acting":
            continue
        n, stamp = int(v.get("commands", 0)), int(v.get("input_stamp_ns", 0))
        if c0 < n <= len(recv) and stamp:
            lat.append((recv[n - 1] - stamp) / 1e6)
            if v.get("act_ms"):
                act.append(float(v["act_ms"]))
    # The control rate: every tick with the timer trigger; with "frames" the ticks that acted (the node
    # also ticks on its timer there, for status and stale checks).
    rows = [(t, v) for t, v in robot.statuses[s0:] if cfg.trigger == "timer" or v.get("state") == "acting"]
    ticks = np.asarray([int(v.get("tick_ns", t)) for t, v in rows], dtype=np.float64)
    periods = np.diff(ticks) / 1e6 if len(ticks) > 1 else np.zeros(0)
    target = 1e3 / cfg.rate_hz
    jitter = np.abs(periods - target).tolist()
    return {
        "frames": frames,
        "commands": len(recv) - c0,
        "latency_ms_median": _pct(lat, 50),
        "latency_ms_p99": _pct(lat, 99),
        "act_ms_median": _pct(act, 50),
        "period_ms_median": _pct(periods.tolist(), 50),
        "jitter_ms_p99": _pct(jitter, 99),
        "samples": len(lat),
    }


def run_bench(checkpoint: str | Path | None, cfg: Ros2BenchConfig) -> dict[str, Any]:
    """Starts the node on `checkpoint` (an untrained default-preset policy when None) and measures it."""
    from vla.models.checkpoint import read_metadata
    from vla.runtime.bench import untrained_checkpoint
    from vla.spaces import Embodiment

    with tempfile.TemporaryDirectory(prefix="vla-bench-ros2-") as tmp:
        ckpt = Path(checkpoint) if checkpoint is not None else untrained_checkpoint(Path(tmp) / "untrained")
        emb = Embodiment.from_dict(read_metadata(ckpt)["embodiment"])
        node_cfg = NodeConfig(namespace=NAMESPACE)
        cmd = [
            sys.executable, "-m", "vla.cli.main", "ros2", "node", "--checkpoint", str(ckpt),
            "--namespace", NAMESPACE, "--rate", f"{cfg.rate_hz:g}", "--trigger", cfg.trigger,
            "--domain-id", str(cfg.domain_id), "--transport", "dds", "--threads", "1", "--stale-ms", "2000",
        ]  # fmt: skip
        # The node's log goes to a file, not a pipe: a full pipe nobody reads would block the node.
        log = (Path(tmp) / "node.log").open("w+")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
        transport = DdsTransport(cfg.domain_id)
        try:
            robot = _Robot(transport, emb, node_cfg)
            deadline = time.monotonic() + cfg.start_timeout_s
            while not robot.ready():
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"the node exited with code {proc.returncode}: {log.read()[-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the node did not appear within {cfg.start_timeout_s:.0f} s")
                time.sleep(0.05)
            robot.instruction.publish(transport.make("std_msgs/msg/String", {"data": INSTRUCTION}))
            _phase(robot, cfg, seconds=cfg.warmup_s, measure=False)
            out: dict[str, Any] = {
                "rate_hz": cfg.rate_hz,
                "trigger": cfg.trigger,
                "cameras": f"{len(emb.cameras)} x {emb.image_size[0]}x{emb.image_size[1]}",
                "checkpoint": str(checkpoint) if checkpoint else "untrained default preset",
            }
            out["idle"] = _analyse(robot, *_phase(robot, cfg, seconds=cfg.seconds, measure=True), cfg)
            if cfg.load:
                ctx = multiprocessing.get_context("spawn")
                hogs = [
                    ctx.Process(target=_burn, args=(cfg.seconds + 1.0,)) for _ in range(os.cpu_count() or 1)
                ]
                for h in hogs:
                    h.start()
                try:
                    out["loaded"] = _analyse(
                        robot, *_phase(robot, cfg, seconds=cfg.seconds, measure=True), cfg
                    )
                finally:
                    for h in hogs:
                        h.join()
            return out
        finally:
            transport.close()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def format_table(summary: dict[str, Any]) -> str:
    """The benchmark's result as a small text table."""
    lines = [
        f"ROS 2 node over DDS loopback: {summary['cameras']} cameras at {summary['rate_hz']:g} Hz, trigger {summary['trigger']}",
        f"{'phase':8s} {'latency med':>12s} {'p99':>8s} {'act med':>8s} {'period med':>11s} {'jitter p99':>11s} {'cmds/frames':>12s}",
    ]
    for phase in ("idle", "loaded"):
        r = summary.get(phase)
        if r is None:
            continue
        lines.append(
            f"{phase:8s} {r['latency_ms_median']:9.1f} ms {r['latency_ms_p99']:5.1f} ms {r['act_ms_median']:5.1f} ms "
            f"{r['period_ms_median']:8.1f} ms {r['jitter_ms_p99']:8.1f} ms {r['commands']:5d}/{r['frames']:<6d}"
        )
    return "\n".join(lines)
