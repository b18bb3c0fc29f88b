"""The node's side of ExecutePlan: the action endpoint, the `scene` topic and the goals still running.

`PolicyNode` owns one `PlanServer` when it is given a `PlanRoute`. The server makes a `PlanRun` per
goal (`plan_goal.py`), keeps the newest scene description of the scene topic for goals that bring
none, publishes what the workers post (feedback; commands through the node, which owns the command
topic and the running task) and ends each goal when its worker has ended. A stopped goal (cancel,
preemption, e-stop) stays here until its worker reports, so its result carries the plan and the
steps done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from vla.planning.plan import PlanError, SceneDescription
from vla.runtime.ros2.config import NodeConfig
from vla.runtime.ros2.messages import PLAN_ACTION_TYPE
from vla.runtime.ros2.plan_goal import PlanRoute, PlanRun, parse_scene
from vla.runtime.ros2.qos import RELIABLE
from vla.runtime.ros2.transport import STATUS_ABORTED, GoalRequest, Transport

logger = logging.getLogger(__name__)


class PlanServer:
    """ExecutePlan goals of one node.

    Args:
        route: the planner, step monitor and retry settings.
        transport: the node's middleware.
        config: the node's settings (the action is `~/execute_plan`, the scene topic `scene`).
        controller: the node's controller.
        controller_lock: held around every use of the controller.
    """

    def __init__(
        self,
        route: PlanRoute,
        transport: Transport,
        config: NodeConfig,
        controller: Any,
        controller_lock: threading.Lock,
    ) -> None:
        self.route = route
        self.transport = transport
        self.action_name = config.topic("~/execute_plan")
        self.endpoint = transport.action_server(self.action_name, PLAN_ACTION_TYPE)
        # std_msgs/String, a JSON scene description (a perception module's, or the simulator's)
        self.scene_sub = transport.subscribe(config.topic("scene"), "std_msgs/msg/String", RELIABLE)
        self.scene: SceneDescription | None = None  # the newest on the scene topic
        self.runs: list[PlanRun] = []  # goals whose worker has not ended yet
        self._controller = controller
        self._lock = controller_lock
        self._grace_s = config.stale_ms / 1e3  # as an ExecuteInstruction goal's grace for a late success

    def new_run(self, event: GoalRequest, *, budget: int, now_ns: int) -> PlanRun:
        """The run of a new goal (not started: the node starts it once it is the running task)."""
        run = PlanRun(
            self.route,
            goal_id=event.goal_id,
            instruction=event.instruction,
            scene=str(event.fields.get("scene", "")),
            fallback_scene=self.scene,
            budget=budget,
            grace_s=self._grace_s,
            controller=self._controller,
            controller_lock=self._lock,
            wake=self.transport.wake,
            started_ns=now_ns,
        )
        self.runs.append(run)
        return run

    def live(self) -> set[bytes]:
        """Ids of the goals whose worker still runs (they end when it does, not on a cancel)."""
        return {run.goal_id for run in self.runs}

    def take_scenes(self, running: PlanRun | None) -> None:
        """Takes the scene topic; the newest description also goes to the running goal."""
        for r in self.scene_sub.take():
            try:
                self.scene = parse_scene(str(r.msg.data))
            except PlanError as e:
                self.scene_sub.counters.malformed += 1
                logger.warning("%s: ignored a scene description: %s", self.scene_sub.topic, e)
                continue
            if running is not None:
                running.update_scene(self.scene)

    def drain(self, running: PlanRun | None, publish: Callable[[np.ndarray, int], None]) -> list[PlanRun]:
        """Publishes what the workers posted; returns the runs that ended.

        Args:
            running: the node's running goal; only its commands are published (`publish(action, stamp)`).
            publish: publishes one command of the running goal (the node counts it).
        """
        ended = []
        for run in list(self.runs):
            for kind, value in run.take():
                if kind == "command" and run is running:
                    publish(*value)
                elif kind == "feedback":
                    self.endpoint.feedback(run.goal_id, {**value, "commands": run.commands})
                elif kind == "done":
                    self._finish(run, value)
                    ended.append(run)
        return ended

    def _finish(self, run: PlanRun, result: Any) -> None:
        self.runs.remove(run)
        status, fields = run.outcome(result)
        duration = (self.transport.now_ns() - run.started_ns) / 1e9
        logger.info(
            "plan goal '%s' ended after %d commands: %s", run.instruction, run.commands, fields["reason"]
        )
        self.endpoint.finish(run.goal_id, status, {**fields, "steps": run.commands, "duration_s": duration})

    def close(self) -> None:
        """At shutdown: stops every worker, waits for it (briefly) and ends its goal."""
        for run in self.runs:
            run.stop("shutdown", STATUS_ABORTED)
        for run in self.runs:
            run.join()
        self.drain(None, lambda *_: None)
        for run in list(self.runs):  # a worker still inside a planner call
            self._finish(run, None)
