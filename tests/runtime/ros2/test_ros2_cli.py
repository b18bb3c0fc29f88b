"""`vla ros2 node --planner rules` as a user starts it: its own process, its ExecutePlan action over DDS,
a refused request answered with the reason, and a clean stop on SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from vla.envs import get_suite
from vla.planning.run import find_scene
from vla.runtime.ros2.action import DdsActionClient
from vla.runtime.ros2.config import NodeConfig
from vla.runtime.ros2.messages import PLAN_ACTION_TYPE
from vla.runtime.ros2.transport import STATUS_ABORTED

REQUEST = "put the red block in the bowl and then push the blue ball to the left"


def test_the_node_command_serves_plans_and_refuses_what_no_skill_matches(tiny_checkpoint, ids, dds) -> None:
    suite = get_suite("tabletop")
    kind, seed = find_scene(suite, REQUEST, split="long_horizon")
    scene = json.dumps(suite.long_horizon_request(kind, split="long_horizon", seed=seed)[1].to_json())
    cmd = [sys.executable, "-m", "vla.cli.main", "ros2", "node", "--checkpoint", str(tiny_checkpoint)]
    cmd += ["--planner", "rules", "--transport", "dds", "--domain-id", str(ids.domain)]
    cmd += ["--namespace", ids.namespace, "--duration", "120"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        client = DdsActionClient(
            dds(), NodeConfig(namespace=ids.namespace).topic("~/execute_plan"), PLAN_ACTION_TYPE
        )
        assert client.wait_for_server(60.0), "the node never offered ExecutePlan"
        gid = client.send_goal("juggle the red block", fields={"scene": scene})
        status, result = client.wait_result(gid, timeout_s=30)
        assert status == STATUS_ABORTED and not result.success
        assert result.reason.startswith("refused:") and "no skill of the policy matches" in result.reason
        assert result.steps == 0
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "execute_plan" in out  # the topics it prints on start
    final = json.loads(out.strip().splitlines()[-1])
    assert final["node"] == "vla_policy" and final["commands"] == 0  # the refused goal moved nothing
