"""The vla policy as a ROS 2 node: cameras, joint states and an instruction in, commands out.

One loop does everything, in the thread that calls `run`: it takes whatever arrived (waking on data),
answers the action server, and at each control tick decides:

    e-stop latched                    -> hold, status ERROR "estop" (the safety filter's latch is set too)
    no task                           -> idle
    an input never arrived            -> hold, status WARN "waiting for <inputs>"
    an input older than stale_ms      -> hold, status STALE "stale: <input> <age> ms"
    not every input has a new message -> wait (no command; never act twice on the same image)
    an input is malformed             -> hold, status WARN "bad_input: <why>" (logged, counted)
    the controller raises             -> hold, status ERROR "controller_error: <why>" (unsafe mode only:
                                         a SafeController with its filter holds by itself)
    otherwise                         -> controller.act(observation) -> command, feedback, status OK

"Hold" means no new command (each command is one step, so the robot stays where it is); with
`hold_command` the node publishes the hold command instead. Chunking, the safety filter and recovery
all run inside `controller` (`vla.runtime.make_safe_controller`). A task is an action goal or an
instruction from the topic; it ends on the task_success signal, its step budget (after a grace of
stale_ms for a late success), cancel, preemption by a newer task, or the e-stop.

With a `PlanRoute` the node also serves ExecutePlan (`plan_server`, `plan_goal`): the executor plans and
runs a long-horizon request in a worker thread; at an acting tick the loop hands it the observation
instead of calling the controller and publishes the commands it posts. The goal ends when the
executor's step monitor says so, never on task_success.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import numpy as np

from vla.runtime.ros2 import codecs
from vla.runtime.ros2.codecs import ERROR, OK, STALE, WARN, CommandCodec, InputError, StateLayout
from vla.runtime.ros2.config import NodeConfig, camera_topic
from vla.runtime.ros2.node_state import InputSlot, NodeStats, Task
from vla.runtime.ros2.plan_goal import PlanRoute
from vla.runtime.ros2.plan_server import PlanServer
from vla.runtime.ros2.qos import LATCHED, RELIABLE, SENSOR
from vla.runtime.ros2.transport import (
    STATUS_ABORTED,
    STATUS_CANCELED,
    STATUS_SUCCEEDED,
    ActionEndpoint,
    CancelRequest,
    GoalRequest,
    Transport,
)
from vla.spaces import Embodiment
from vla.types import Observation

logger = logging.getLogger(__name__)

LOG_EVERY_S = 5.0


class PolicyNode:
    """Runs a safe controller on ROS 2 inputs and publishes its commands.

    Args:
        controller: a `SafeController` (`make_safe_controller(policy)`), or anything with
            `act(Observation)`, `reset()` and a `safety` attribute (SafetyFilter or None).
        embodiment: the robot the policy was trained for (cameras, image size, state layout).
        transport: the middleware (`DdsTransport` or the rclpy adapter).
        config: node settings.
        name: the policy's name, for the status.
        plans: serve the ExecutePlan action with this planner and step monitor (None: not served).
    """

    def __init__(
        self,
        controller: Any,
        embodiment: Embodiment,
        transport: Transport,
        config: NodeConfig | None = None,
        *,
        name: str = "vla",
        plans: PlanRoute | None = None,
    ) -> None:
        self.config = cfg = config or NodeConfig()
        self.controller = controller
        self.embodiment = embodiment
        self.transport = transport
        self.name = name
        self.rate_hz = float(cfg.rate_hz or embodiment.control_hz)
        joints = cfg.joints_for(len(embodiment.joint_low))
        self.layout = StateLayout(
            embodiment, joints, tuple(cfg.gripper_joints), from_state_topic=bool(cfg.state_topic)
        )
        self.codec = CommandCodec.for_embodiment(
            embodiment, space=cfg.action_space, joint_names=joints, control_hz=self.rate_hz
        )
        self.inputs: dict[str, InputSlot] = {}
        self._subs: dict[str, Any] = {}
        for cam in embodiment.cameras:
            self._add_input(f"camera:{cam}", cfg.topic(camera_topic(cam)), "sensor_msgs/msg/Image")
        if self.layout.from_state_topic:
            self._add_input("state", cfg.topic(cfg.state_topic), "std_msgs/msg/Float32MultiArray")
        if self.layout.needs_joints:
            self._add_input("joint_states", cfg.topic("joint_states"), "sensor_msgs/msg/JointState")
        if self.layout.needs_pose:
            self._add_input("ee_pose", cfg.topic("ee_pose"), "geometry_msgs/msg/PoseStamped")
        self._instruction = transport.subscribe(cfg.topic("instruction"), "std_msgs/msg/String", RELIABLE)
        self._estop = transport.subscribe(cfg.topic("estop"), "std_msgs/msg/Bool", RELIABLE)
        self._success = transport.subscribe(cfg.topic("task_success"), "std_msgs/msg/Bool", RELIABLE)
        self.command_topic = cfg.topic(self.codec.topic)
        self._command = transport.advertise(self.command_topic, self.codec.msgtype, RELIABLE)
        self.status_topic = cfg.topic("~/status")
        self._status = transport.advertise(self.status_topic, "diagnostic_msgs/msg/DiagnosticArray", LATCHED)
        self.action_name = cfg.topic("~/execute_instruction")
        self.action = transport.action_server(self.action_name)
        self._controller_lock = threading.Lock()  # plan workers use the controller from their thread
        self.plans = PlanServer(plans, transport, cfg, controller, self._controller_lock) if plans else None
        self.task: Task | None = None
        self.estopped = False
        self.estop_reason = ""
        self.state = "idle"
        self.message = "idle"
        self.level = OK
        self.stats = NodeStats()
        self.last_command: np.ndarray | None = None
        self._last_log: tuple[str, float] = ("", 0.0)
        self._tick_wall_ns = 0

    def _add_input(self, key: str, topic: str, msgtype: str) -> None:
        self.inputs[key] = InputSlot(topic)
        self._subs[key] = self.transport.subscribe(topic, msgtype, SENSOR)

    @property
    def topics(self) -> dict[str, str]:
        """Every topic of the node: input key or role -> absolute name (for logs and docs)."""
        out = {k: i.topic for k, i in self.inputs.items()}
        out.update(
            instruction=self._instruction.topic,
            estop=self._estop.topic,
            task_success=self._success.topic,
            command=self.command_topic,
            status=self.status_topic,
            action=self.action_name,
        )
        if self.plans is not None:
            out.update(scene=self.plans.scene_sub.topic, plan_action=self.plans.action_name)
        return out

    # ---- the loop ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, duration_s: float | None = None) -> None:
        """Runs until `stop` is set (or `duration_s` passes), then ends the running goal ("shutdown")."""
        period_ns = round(1e9 / self.rate_hz)
        start = time.monotonic_ns()
        next_tick = start
        end = None if duration_s is None else start + int(duration_s * 1e9)
        try:
            while not stop.is_set() and (end is None or time.monotonic_ns() < end):
                self.drain()
                now = time.monotonic_ns()
                frames_ready = self.config.trigger == "frames" and self._ready()
                if now >= next_tick or frames_ready:
                    self.tick()
                    if now >= next_tick:
                        next_tick += period_ns
                        if next_tick <= now:  # a late tick: skip the missed ones, keep the phase
                            missed = (now - next_tick) // period_ns + 1
                            self.stats.overruns += int(missed)
                            next_tick += missed * period_ns
                    continue
                self.transport.wait((next_tick - now) / 1e9)
        finally:
            self._end_task(STATUS_ABORTED, "shutdown")
            if self.plans is not None:
                self.plans.close()

    def drain(self) -> None:
        """Takes everything that arrived: inputs, task_success, e-stop, instructions, goal events."""
        for key, sub in self._subs.items():
            for r in sub.take():
                self.inputs[key].update(r)
        # task_success first: a success taken together with a new goal belongs to the task before it.
        for r in self._success.take():
            if bool(r.msg.data) and self.task is not None and self.task.run is None:
                self._end_task(STATUS_SUCCEEDED, "succeeded")
        for r in self._estop.take():
            self._set_estop(bool(r.msg.data))
        for r in self._instruction.take():
            text = str(r.msg.data).strip()
            if text:
                self._start_task(Task(text, None, None, self.transport.now_ns()))
            elif self.task is not None:
                self._end_task(STATUS_CANCELED, "canceled")
        self._serve(self.action)
        if self.plans is not None:
            self.plans.take_scenes(self.task.run if self.task else None)
            self._serve(self.plans.endpoint)
            self._drain_plans()

    def _serve(self, endpoint: ActionEndpoint) -> None:
        """Starts and cancels the goals of one action server."""
        for event in endpoint.poll():
            if isinstance(event, GoalRequest):
                budget = event.max_steps or self.config.max_steps
                now = self.transport.now_ns()
                run = None
                if self.plans is not None and endpoint is self.plans.endpoint:
                    run = self.plans.new_run(event, budget=budget, now_ns=now)
                self._start_task(
                    Task(event.instruction, event.goal_id, budget, now, endpoint=endpoint, run=run)
                )
                if self.estopped:
                    self._end_task(STATUS_ABORTED, f"estop: {self.estop_reason}")
                elif run is not None:
                    run.start()
            elif isinstance(event, CancelRequest):
                task = self.task
                if task is not None and task.endpoint is endpoint and task.goal_id in event.goal_ids:
                    self._end_task(STATUS_CANCELED, "canceled")
                live = self.plans.live() if self.plans is not None else set()  # end with their worker
                for gid in event.goal_ids:  # goals that are not running any more end too
                    if gid not in live:
                        endpoint.finish(gid, STATUS_CANCELED, self._result(False, "canceled", 0, 0.0))

    # ---- ExecutePlan goals (plan_server.py) --------------------------------------------------------
    def _drain_plans(self) -> None:
        assert self.plans is not None
        ended = self.plans.drain(self.task.run if self.task else None, self._publish_plan_command)
        if self.task is not None and self.task.run in ended:  # it ended by itself
            self.task = None

    def _publish_plan_command(self, action: np.ndarray, stamp: int) -> None:
        task = self.task
        assert task is not None and task.run is not None
        if not np.all(np.isfinite(action)):  # only without a safety filter (unsafe mode)
            return self._end_task(STATUS_ABORTED, "bad_command: the controller returned a non-finite command")
        self._publish(action, stamp)
        task.steps += 1
        task.run.commands += 1
        run = task.run
        self._report("acting", OK, f"acting: plan step {run.index}/{run.plan_steps} '{run.text}'")
        return None

    def _ready(self) -> bool:
        return (
            self.task is not None
            and not self.estopped
            and self.task.budget_spent_ns == 0
            and all(i.fresh for i in self.inputs.values())
        )

    def tick(self) -> None:
        """One control decision (see the module docstring)."""
        now = self._tick_wall_ns = self.transport.now_ns()
        self.stats.ticks += 1
        self.stats.tick_ns.append(time.monotonic_ns())
        task = self.task
        if self.estopped:
            return self._hold("estop", ERROR, f"estop: {self.estop_reason}")
        if task is None:
            return self._report("idle", OK, "idle")
        if task.budget_spent_ns:
            if now - task.budget_spent_ns >= self.config.stale_ms * 1e6:
                self._end_task(STATUS_ABORTED, "max_steps")
            return None
        missing = [k for k, i in self.inputs.items() if i.msg is None]
        if missing:
            return self._hold("waiting", WARN, f"waiting for {', '.join(missing)}")
        stale = {k: (now - i.fresh_ns) / 1e6 for k, i in self.inputs.items()}
        stale = {k: age for k, age in stale.items() if age > self.config.stale_ms}
        if stale:
            ages = ", ".join(f"{k} {age:.0f} ms" for k, age in stale.items())
            return self._hold("stale", STALE, f"stale: {ages} without a new message")
        if not all(i.fresh for i in self.inputs.values()):
            return self._report("waiting", OK, "waiting for new inputs")
        try:
            obs = self._observation(task.instruction)
        except InputError as e:
            for i in self.inputs.values():
                i.mark_used()  # the same bad message is not re-tried every tick
            return self._hold("bad_input", WARN, f"bad_input: {e}")
        stamp = max(i.stamp_ns for i in self.inputs.values())
        if task.run is not None:  # the goal's worker acts on it; its commands come back through drain
            for i in self.inputs.values():
                i.mark_used()
            task.run.offer(obs, stamp)
            return None
        t0 = time.perf_counter()
        try:
            with self._controller_lock:
                action = np.asarray(self.controller.act(obs), dtype=np.float32)
        except Exception as e:  # a SafeController holds by itself; anything else must not kill the node
            for i in self.inputs.values():
                i.mark_used()
            return self._hold("controller_error", ERROR, f"controller_error: {type(e).__name__}: {e}")
        self.stats.act_ms.append((time.perf_counter() - t0) * 1e3)
        for i in self.inputs.values():
            i.mark_used()
        if not np.all(np.isfinite(action)):
            # Only without a safety filter (unsafe mode) can a command be non-finite; never send it.
            return self._hold("bad_command", ERROR, "the controller returned a non-finite command")
        self._publish(action, stamp)
        task.steps += 1
        safety = self._safety_text()
        self._report("acting", OK, f"acting: step {task.steps}" + ("" if safety == "ok" else f" ({safety})"))
        if task.goal_id is not None and task.endpoint is not None:
            task.endpoint.feedback(
                task.goal_id,
                {"step": task.steps, "confidence": self._confidence(), "safety": safety, "state": "acting"},
            )
        if task.max_steps is not None and task.steps >= task.max_steps:
            task.budget_spent_ns = now
        return None

    # ---- pieces -----------------------------------------------------------------------------------
    def _observation(self, instruction: str) -> Observation:
        h, w = self.embodiment.image_size
        images = {}
        for cam in self.embodiment.cameras:
            inp = self.inputs[f"camera:{cam}"]
            images[cam] = codecs.image_to_array(inp.msg, size=(int(h), int(w)), topic=inp.topic)
        state = self.layout.assemble(
            joints=self.inputs["joint_states"].msg if "joint_states" in self.inputs else None,
            pose=self.inputs["ee_pose"].msg if "ee_pose" in self.inputs else None,
            state=self.inputs["state"].msg if "state" in self.inputs else None,
        )
        return Observation(images=images, state=state, instruction=instruction)

    def _publish(self, action: np.ndarray, stamp: int) -> None:
        self._command.publish(
            self.transport.make(self.codec.msgtype, self.codec.encode(action, stamp_ns=stamp))
        )
        self.last_command = action
        self.stats.commands += 1
        self.stats.published.append((stamp, self.transport.now_ns()))

    def _hold(self, state: str, level: int, message: str) -> None:
        self.stats.holds[state] = self.stats.holds.get(state, 0) + 1
        if self.config.hold_command and self.last_command is not None and self.task is not None:
            hold = self.last_command.copy()
            safety = getattr(self.controller, "safety", None)
            if safety is not None:
                hold[safety.limits.is_delta] = 0.0
            elif self.codec.kind == "multiarray":
                hold[:] = 0.0
            stamp = max((i.stamp_ns for i in self.inputs.values()), default=0)
            self._command.publish(
                self.transport.make(self.codec.msgtype, self.codec.encode(hold, stamp_ns=stamp))
            )
        self._report(state, level, message)
        task = self.task
        if task is not None and task.goal_id is not None and task.endpoint is not None:
            fields = (
                task.run.hold_feedback(state)  # once per change: a plan's feedback is per step
                if task.run is not None
                else {
                    "step": task.steps,
                    "confidence": self._confidence(),
                    "safety": f"hold: {state}",
                    "state": state,
                }
            )
            if fields is not None:
                task.endpoint.feedback(task.goal_id, fields)

    def _report(self, state: str, level: int, message: str) -> None:
        self.state, self.level, self.message = state, level, message
        # Log changes, not ticks: the same situation (numbers aside) is logged again after LOG_EVERY_S.
        key = re.sub(r"[0-9.]+", "#", message)
        now = time.monotonic()
        if state not in ("acting", "waiting") and (
            key != self._last_log[0] or now - self._last_log[1] > LOG_EVERY_S
        ):
            log = logger.info if level == OK else logger.warning
            log("%s: %s", self.name, message)
            self._last_log = (key, now)
        elif state == "acting":
            self._last_log = ("", 0.0)
        values: dict[str, Any] = {
            "state": state,
            "instruction": self.task.instruction if self.task else "",
            "goal": self.task.goal_id.hex() if self.task and self.task.goal_id else "",
            "step": self.task.steps if self.task else 0,
            "rate_hz": f"{self.rate_hz:g}",
            "commands": self.stats.commands,
            "command_topic": self.command_topic,
            "command_layout": ",".join(self.codec.names()),
            "estop": self.estopped,
            # which inputs the last command answered (newest stamp, ns) and what the controller took
            "input_stamp_ns": self.stats.published[-1][0] if self.stats.published else 0,
            "act_ms": f"{self.stats.act_ms[-1]:.3f}" if self.stats.act_ms else "",
            "tick_ns": self._tick_wall_ns,  # when this tick started (the status stamp is when it ended)
        }
        values.update({f"holds.{k}": v for k, v in sorted(self.stats.holds.items())})
        for key, sub in self._subs.items():
            if sub.counters.malformed:
                values[f"malformed.{key}"] = sub.counters.malformed
        safety = getattr(self.controller, "safety", None)
        if safety is not None:
            values.update({f"safety.{k}": v for k, v in sorted(safety.stats.items())})
        self._status.publish(
            self.transport.make(
                "diagnostic_msgs/msg/DiagnosticArray",
                codecs.status_fields(
                    stamp_ns=self.transport.now_ns(),
                    name=f"{self.config.node_name}: {self.name}",
                    hardware_id=self.embodiment.name,
                    level=level,
                    message=message,
                    values=values,
                ),
            )
        )

    def _safety_text(self) -> str:
        safety = getattr(self.controller, "safety", None)
        reasons = tuple(getattr(safety, "last_reasons", ()) or ())
        if not reasons:
            return "ok"
        return ("hold: " if getattr(safety, "blocked", False) else "clipped: ") + ", ".join(reasons)

    def _confidence(self) -> float:
        inner = getattr(self.controller, "controller", self.controller)
        c = getattr(inner, "last_confidence", None)
        return float("nan") if c is None else float(c)

    def _set_estop(self, on: bool) -> None:
        safety = getattr(self.controller, "safety", None)
        if on and not self.estopped:
            self.estopped, self.estop_reason = True, f"operator ({self._estop.topic})"
            if safety is not None:
                safety.estop(self.estop_reason)
            if self.task is not None and self.task.goal_id is not None:
                self._end_task(STATUS_ABORTED, f"estop: {self.estop_reason}")
        elif not on and self.estopped:
            self.estopped = False
            if safety is not None:
                safety.release_estop()
            logger.warning("%s: e-stop released", self.name)

    def _start_task(self, task: Task) -> None:
        if self.task is not None:
            self._end_task(STATUS_ABORTED, "preempted")
        self.task = task
        with self._controller_lock:
            self.controller.reset()
        if task.goal_id is not None and task.endpoint is not None:
            task.endpoint.executing(task.goal_id)
        logger.info("%s: new task '%s'%s", self.name, task.instruction, " (goal)" if task.goal_id else "")

    def _end_task(self, status: int, reason: str) -> None:
        task, self.task = self.task, None
        if task is None:
            return
        logger.info("%s: task '%s' ended after %d steps: %s", self.name, task.instruction, task.steps, reason)
        if task.run is not None:
            task.run.stop(reason, status)  # the goal ends when its worker has stopped (`_drain_plans`)
        elif task.goal_id is not None and task.endpoint is not None:
            dur = (self.transport.now_ns() - task.started_ns) / 1e9
            task.endpoint.finish(
                task.goal_id, status, self._result(status == STATUS_SUCCEEDED, reason, task.steps, dur)
            )

    @staticmethod
    def _result(success: bool, reason: str, steps: int, duration_s: float) -> dict[str, Any]:
        return {"success": success, "reason": reason, "steps": steps, "duration_s": duration_s}
