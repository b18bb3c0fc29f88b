"""`vla ros2 node|sim|topics` and `vla bench ros2`: vla policies on the ROS 2 graph (docs/ros2.md)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from vla.checkpoint_layout import not_a_checkpoint

Opt = typer.Option
ros2_app = typer.Typer(help="Run policies on the ROS 2 graph (no ROS install needed).", no_args_is_help=True)
logger = logging.getLogger("vla.cli.ros2")


class TransportKind(StrEnum):
    auto = "auto"
    dds = "dds"
    rclpy = "rclpy"


class Trigger(StrEnum):
    timer = "timer"
    frames = "frames"


class Drive(StrEnum):
    action = "action"
    topic = "topic"
    plan = "plan"


def _fail(e: Exception) -> None:
    typer.secho(f"error: {e}", fg="red", err=True)
    raise typer.Exit(2)


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _node_config(**kw: Any) -> Any:
    from vla.runtime.ros2.config import NodeConfig

    return NodeConfig(**kw)


def _transport(kind: TransportKind, *, domain_id: int | None, node_name: str, namespace: str) -> Any:
    if kind in (TransportKind.auto, TransportKind.rclpy):
        try:
            import rclpy  # noqa: F401
        except ImportError:
            if kind == TransportKind.rclpy:
                raise ValueError(
                    "--transport rclpy needs a ROS 2 install (source /opt/ros/<distro>/setup.bash)"
                ) from None
        else:
            from vla.runtime.ros2.rclpy_adapter import RclpyTransport

            return RclpyTransport(node_name, namespace)
    from vla.runtime.ros2.dds import DdsTransport

    return DdsTransport(domain_id)


def _plan_route(planner: str, suite_name: str, *, retries: int, replans: int, opts: dict[str, Any]) -> Any:
    """The ExecutePlan route of `--planner` (None without one): the planner over the suite's skills,
    the suite's step monitor and paraphrases."""
    if not planner:
        return None
    from vla.envs import get_suite
    from vla.planning.executor import ExecutorConfig
    from vla.planning.registry import build_planner
    from vla.planning.run import long_horizon_suite
    from vla.runtime.ros2.plan_goal import PlanRoute

    suite = long_horizon_suite(get_suite(suite_name), suite_name)
    executor = ExecutorConfig(retries=retries, replans=replans)
    return PlanRoute.for_suite(suite, build_planner(planner, suite.skills, **opts), executor)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def node(
    checkpoint: Annotated[Path, Opt("--checkpoint", help="checkpoint directory")],
    namespace: Annotated[str, Opt(help="ROS namespace of the node")] = "/",
    node_name: Annotated[str, Opt("--node-name", help="ROS node name")] = "vla_policy",
    remap: Annotated[list[str] | None, Opt("--remap", "-r", help="topic remap from:=to (repeatable)")] = None,
    rate: Annotated[float | None, Opt(help="control rate in Hz (default: the embodiment's)")] = None,
    trigger: Annotated[
        Trigger, Opt(help="timer: act on the rate's tick; frames: as soon as inputs are new")
    ] = Trigger.timer,
    stale_ms: Annotated[
        float, Opt("--stale-ms", help="hold when an input has no new message for this long")
    ] = 500.0,
    max_steps: Annotated[int, Opt("--max-steps", min=1, help="step budget of goals that ask for 0")] = 1000,
    joint_names: Annotated[
        str, Opt("--joint-names", help="comma-separated arm joints (default joint1..N)")
    ] = "",
    gripper_joints: Annotated[
        str, Opt("--gripper-joints", help="joints summed into the gripper state")
    ] = "finger_joint1,finger_joint2",
    state_topic: Annotated[
        str, Opt("--state-topic", help="read the whole state from a Float32MultiArray")
    ] = "",
    hold_command: Annotated[
        bool, Opt("--hold-command", help="publish the hold command while holding")
    ] = False,
    controller: Annotated[str, Opt(help="chunk | ensemble")] = "chunk",
    execute_steps: Annotated[
        int, Opt("--execute-steps", min=0, help="actions per chunk (0: the policy's)")
    ] = 0,
    domain_id: Annotated[
        int | None, Opt("--domain-id", help="DDS domain (default $ROS_DOMAIN_ID or 0)")
    ] = None,
    threads: Annotated[int, Opt(min=1, help="torch threads for inference")] = 1,
    transport: Annotated[
        TransportKind, Opt(help="auto: rclpy when installed, else DDS")
    ] = TransportKind.auto,
    duration: Annotated[float | None, Opt(help="stop after this many seconds")] = None,
    planner: Annotated[
        str,
        Opt(
            help="serve the ExecutePlan action with this planner: smollm2 | smollm2-llamacpp | rules | openai | anthropic"
        ),
    ] = "",
    suite: Annotated[
        str, Opt(help="the suite whose skills and step monitor plans use (with --planner)")
    ] = "tabletop",
    retries: Annotated[int, Opt(min=0, help="plans: rephrased retries of a failed step")] = 1,
    replans: Annotated[int, Opt(min=0, help="plans: re-plans per goal")] = 2,
    planner_url: Annotated[str | None, Opt(help="HTTP planners: base URL")] = None,
    planner_model: Annotated[str | None, Opt(help="HTTP planners: model name")] = None,
    planner_threads: Annotated[int, Opt(min=1, help="threads of the offline planner's language model")] = 1,
) -> None:
    """Runs a checkpoint as a ROS 2 node: cameras + joint states + instruction in, commands out."""
    import torch

    from vla.cli.planning import planner_options
    from vla.models import Policy
    from vla.runtime.recovery import make_safe_controller
    from vla.runtime.ros2.node import PolicyNode

    torch.set_num_threads(threads)
    try:
        cfg = _node_config(
            node_name=node_name,
            namespace=namespace,
            remaps=tuple(remap or ()),
            rate_hz=rate,
            trigger=trigger.value,
            stale_ms=stale_ms,
            max_steps=max_steps,
            joint_names=_names(joint_names),
            gripper_joints=_names(gripper_joints),
            state_topic=state_topic,
            hold_command=hold_command,
            controller=controller,
            execute_steps=execute_steps,
        )
        if not (checkpoint / "config.json").is_file():
            raise FileNotFoundError(not_a_checkpoint(checkpoint))
        policy = Policy.from_pretrained(checkpoint)
        from vla.models.grounding_check import GroundingCheck

        # The checkpoint's checks (words, then the goal's first frame), when it has them: a goal they
        # refuse is held, not acted on.
        checks = GroundingCheck.load(checkpoint)
        if checks is not None:
            checks.warm()  # the skill check's model loads before the first goal, not during it
        ctl = make_safe_controller(
            policy,
            mode=cfg.controller,
            execute_steps=cfg.execute_steps or policy.config.steps_per_chunk,
            instruction_check=checks,
        )
        opts = planner_options(planner_url, planner_model, None, None, planner_threads)
        route = _plan_route(planner, suite, retries=retries, replans=replans, opts=opts)
        tr = _transport(transport, domain_id=domain_id, node_name=node_name, namespace=namespace)
        # "runs/demo/checkpoint" is called "demo" in logs and the status.
        label = checkpoint.resolve().parent.name if checkpoint.name == "checkpoint" else checkpoint.name
        n = PolicyNode(ctl, policy.embodiment, tr, cfg, name=label, plans=route)
    except (ValueError, FileNotFoundError, KeyError, ImportError) as e:
        _fail(e)
    typer.echo(f"vla ros2 node '{cfg.node_name}' ({type(tr).__name__}, {n.rate_hz:g} Hz, {checkpoint}):")
    for role, topic in n.topics.items():
        typer.echo(f"  {role:16s} {topic}")
    stop = _stop_on_signals()
    try:
        n.run(stop, duration_s=duration)
    finally:
        tr.close()
    typer.echo(
        json.dumps(
            {
                "node": cfg.node_name,
                "commands": n.stats.commands,
                "ticks": n.stats.ticks,
                "holds": n.stats.holds,
            }
        )
    )


def sim(
    suite_name: Annotated[str, typer.Argument(metavar="SUITE", help="simulator suite, e.g. tabletop")],
    families: Annotated[
        str, Opt(help="comma-separated task families (--drive plan: long-horizon kinds; default: all)")
    ] = "",
    split: Annotated[
        str, Opt(help="suite split (default: train; --drive plan: the first long-horizon)")
    ] = "",
    episodes: Annotated[int, Opt(min=1, help="episodes per family")] = 10,
    seed: Annotated[int, Opt(help="seed of episode 0 (episode i uses seed + i, as `vla eval`)")] = 100_000,
    image_size: Annotated[int, Opt("--image-size", min=8)] = 96,
    action_mode: Annotated[
        str, Opt("--action-mode", help="the env's action space (ee_delta | joint_pos)")
    ] = "ee_delta",
    drive: Annotated[
        Drive,
        Opt(
            help="action: one ExecuteInstruction goal per episode; topic: the instruction topic; "
            "plan: one ExecutePlan goal per long-horizon request (the node needs --planner)"
        ),
    ] = Drive.action,
    namespace: Annotated[str, Opt(help="namespace of the node it drives")] = "/",
    node_name: Annotated[str, Opt("--node-name", help="name of the node it drives")] = "vla_policy",
    remap: Annotated[list[str] | None, Opt("--remap", "-r", help="topic remap from:=to (repeatable)")] = None,
    joint_names: Annotated[str, Opt("--joint-names")] = "",
    gripper_joints: Annotated[str, Opt("--gripper-joints")] = "finger_joint1,finger_joint2",
    domain_id: Annotated[
        int | None, Opt("--domain-id", help="DDS domain (default $ROS_DOMAIN_ID or 0)")
    ] = None,
    wait_node: Annotated[float, Opt("--wait-node", help="seconds to wait for the node to appear")] = 60.0,
    out: Annotated[Path | None, Opt(help="write the per-episode results here (JSON)")] = None,
) -> None:
    """A simulated robot on the ROS 2 graph: publishes cameras and joint states, executes commands."""
    from vla.envs import get_suite
    from vla.evaluate import wilson_interval
    from vla.runtime.ros2.dds import DdsTransport
    from vla.runtime.ros2.sim import SimConfig, SimRobot

    try:
        suite = get_suite(suite_name)
        if drive == Drive.plan:
            from vla.planning.run import long_horizon_suite

            lh = long_horizon_suite(suite, suite_name)
            fams, split = list(_names(families) or lh.long_horizon_kinds), split or lh.long_horizon_splits[0]
        else:
            fams, split = list(_names(families) or suite.families), split or "train"
        cfg = SimConfig(
            drive=drive.value,
            node=_node_config(
                node_name=node_name,
                namespace=namespace,
                remaps=tuple(remap or ()),
                joint_names=_names(joint_names),
                gripper_joints=_names(gripper_joints),
            ),
        )
        make = lh.make_long_horizon if drive == Drive.plan else suite.make
        envs = {
            f: make(f, split=split, image_size=(image_size, image_size), action_mode=action_mode)
            for f in fams
        }
        tr = DdsTransport(domain_id)
        robot = SimRobot(envs[fams[0]], tr, cfg)
    except (ValueError, KeyError, TypeError) as e:
        _fail(e)
    typer.echo(
        f"vla ros2 sim {suite_name}: waiting for node '{cfg.node.topic('~')}' (domain {tr.domain_id}) ..."
    )
    if not robot.wait_for_node(wait_node):
        tr.close()
        _fail(
            TimeoutError(
                f"no node on {cfg.node.topic('~')} within {wait_node:.0f} s (is `vla ros2 node` running?)"
            )
        )
    rows: list[dict[str, Any]] = []
    typer.echo(f"{'family':14s} {'success':>8s} {'95% CI':>10s} {'episodes':>9s} {'length':>7s}")
    try:
        for fam in fams:
            robot.use_env(envs[fam])
            outs = [robot.run_episode(seed + i) for i in range(episodes)]
            k = sum(o.success for o in outs)
            lo, hi = wilson_interval(k, len(outs))
            length = sum(o.steps for o in outs) / len(outs)
            typer.echo(f"{fam:14s} {k / len(outs):8.1%} {lo:4.0%}-{hi:3.0%} {len(outs):9d} {length:7.1f}")
            rows += [
                {
                    "family": fam,
                    "seed": o.seed,
                    "instruction": o.instruction,
                    "success": o.success,
                    "length": o.steps,
                    "goal_status": o.goal_status,
                    "goal_reason": o.goal_reason,
                    "failure": o.failure,
                }
                | (
                    {"goal_success": bool(o.result.success), "steps_completed": int(o.result.steps_completed)}
                    if drive == Drive.plan and o.result is not None
                    else {}
                )
                for o in outs
            ]
    finally:
        tr.close()
        for env in envs.values():
            env.close()
    per_family = {f: sum(r["success"] for r in rows if r["family"] == f) / episodes for f in fams}
    summary = {
        "sim": suite_name,
        "success_rate": sum(per_family.values()) / len(per_family),
        "success_rate_per_family": per_family,
        "ci95": list(wilson_interval(sum(r["success"] for r in rows), len(rows))),
        "episodes": len(rows),
        "seed": seed,
        "bad_commands": robot.bad_commands,
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**summary, "rollouts": rows}, indent=1))
    typer.echo(f"{'overall':14s} {summary['success_rate']:8.1%}")
    typer.echo(json.dumps(summary))


def topics(
    checkpoint: Annotated[Path, Opt("--checkpoint", help="checkpoint directory")],
    namespace: Annotated[str, Opt(help="ROS namespace of the node")] = "/",
    node_name: Annotated[str, Opt("--node-name")] = "vla_policy",
    remap: Annotated[list[str] | None, Opt("--remap", "-r", help="topic remap from:=to (repeatable)")] = None,
) -> None:
    """Prints the node's topic table for a checkpoint (without starting it)."""
    from vla.models.checkpoint import read_metadata
    from vla.runtime.ros2.codecs import CommandCodec
    from vla.runtime.ros2.config import camera_topic
    from vla.spaces import Embodiment

    try:
        cfg = _node_config(node_name=node_name, namespace=namespace, remaps=tuple(remap or ()))
        if not (checkpoint / "config.json").is_file():
            raise FileNotFoundError(not_a_checkpoint(checkpoint))
        meta = read_metadata(checkpoint)
        if "embodiment" not in meta:
            raise ValueError(f"{checkpoint}: metadata.json has no 'embodiment'")
        emb = Embodiment.from_dict(meta["embodiment"])
    except (ValueError, FileNotFoundError, KeyError) as e:
        _fail(e)
    codec = CommandCodec.for_embodiment(emb, space=None, joint_names=cfg.joints_for(len(emb.joint_low)))
    rows = [
        (
            cfg.topic(camera_topic(c)),
            "sensor_msgs/msg/Image",
            "in",
            f"camera '{c}' {emb.image_size[0]}x{emb.image_size[1]} rgb8",
        )
        for c in emb.cameras
    ]
    rows += [
        (cfg.topic("joint_states"), "sensor_msgs/msg/JointState", "in", "arm + gripper joints"),
        (cfg.topic("ee_pose"), "geometry_msgs/msg/PoseStamped", "in", "end-effector pose"),
        (cfg.topic("instruction"), "std_msgs/msg/String", "in", "new task; '' stops"),
        (cfg.topic("estop"), "std_msgs/msg/Bool", "in", "true latches the e-stop, false releases"),
        (cfg.topic("task_success"), "std_msgs/msg/Bool", "in", "true ends the task as succeeded"),
        (cfg.topic(codec.topic), codec.msgtype, "out", ",".join(codec.names())),
        (cfg.topic("~/status"), "diagnostic_msgs/msg/DiagnosticArray", "out", "state, holds, safety counts"),
        (
            cfg.topic("~/execute_instruction"),
            "vla_ros2/action/ExecuteInstruction",
            "action",
            "goal: instruction",
        ),
        (cfg.topic("scene"), "std_msgs/msg/String", "in", "with --planner: JSON scene description"),
        (
            cfg.topic("~/execute_plan"),
            "vla_ros2/action/ExecutePlan",
            "action",
            "with --planner: goal: long-horizon request + scene",
        ),
    ]
    for topic, msgtype, direction, note in rows:
        typer.echo(f"{direction:6s} {topic:40s} {msgtype:40s} {note}")


def bench_ros2(
    checkpoint: Annotated[
        Path | None, Opt("--checkpoint", help="checkpoint dir (default: untrained default preset)")
    ] = None,
    rate: Annotated[float, Opt(help="camera and control rate, Hz")] = 20.0,
    seconds: Annotated[float, Opt(help="measured seconds per phase")] = 15.0,
    trigger: Annotated[Trigger, Opt(help="the node's trigger")] = Trigger.timer,
    load: Annotated[bool, Opt("--load/--no-load", help="also measure with a CPU hog running")] = True,
    domain_id: Annotated[int, Opt("--domain-id", help="DDS domain used by the benchmark")] = 77,
) -> None:
    """End-to-end latency (image published -> command received) and control-rate jitter over DDS."""
    from vla.runtime.ros2.bench import Ros2BenchConfig, format_table, run_bench

    try:
        cfg = Ros2BenchConfig(
            rate_hz=rate, seconds=seconds, trigger=trigger.value, load=load, domain_id=domain_id
        )
        summary = run_bench(checkpoint, cfg)
    except (ValueError, FileNotFoundError, TimeoutError) as e:
        _fail(e)
    typer.echo(format_table(summary))
    typer.echo(json.dumps({"bench": "ros2", **summary}))


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Adds this area's commands to the root app and the `vla bench` group."""
    ros2_app.command("node")(node)
    ros2_app.command("sim")(sim)
    ros2_app.command("topics")(topics)
    app.add_typer(ros2_app, name="ros2")
    bench.command("ros2")(bench_ros2)
