"""Starts `vla ros2 node` on a checkpoint, on rclpy (the ROS 2 install's own middleware settings apply).

    ros2 launch vla_ros2 vla_policy.launch.py checkpoint:=/path/to/checkpoint \
        namespace:=/arm rate:=10 camera_scene:=/camera/color/image_raw camera_wrist:=/wrist/image_raw

`vla` must be on PATH (pip install vla into the Python that ROS uses), or pass vla:=/path/to/venv/bin/vla.
Topic remaps other than the cameras go in `remaps` as a space-separated list of from:=to.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration

ARGS = {
    "checkpoint": ("", "checkpoint directory (required)"),
    "vla": ("vla", "the vla executable"),
    "namespace": ("/", "ROS namespace of the node"),
    "node_name": ("vla_policy", "ROS node name"),
    "rate": ("", "control rate in Hz (default: the checkpoint's embodiment)"),
    "trigger": ("timer", "timer | frames"),
    "stale_ms": ("500", "hold when an input has no new message for this long"),
    "joint_names": ("", "comma-separated arm joints in state order (default joint1..N)"),
    "gripper_joints": ("finger_joint1,finger_joint2", "joints whose positions sum to the gripper state"),
    "camera_scene": ("", "remap of cameras/scene/image_raw"),
    "camera_wrist": ("", "remap of cameras/wrist/image_raw"),
    "remaps": ("", "more remaps: 'from:=to from:=to'"),
    "hold_command": ("false", "publish the hold command while holding"),
    "threads": ("1", "torch threads"),
    "planner": ("", "serve the ExecutePlan action with this planner (e.g. smollm2); '': not served"),
}


def _command(context, *_):
    get = {k: LaunchConfiguration(k).perform(context) for k in ARGS}
    if not get["checkpoint"]:
        raise RuntimeError("vla_policy.launch.py needs checkpoint:=/path/to/checkpoint")
    cmd = [get["vla"], "ros2", "node", "--transport", "rclpy", "--checkpoint", get["checkpoint"]]
    cmd += ["--namespace", get["namespace"], "--node-name", get["node_name"], "--trigger", get["trigger"]]
    cmd += ["--stale-ms", get["stale_ms"], "--gripper-joints", get["gripper_joints"], "--threads", get["threads"]]
    if get["rate"]:
        cmd += ["--rate", get["rate"]]
    if get["joint_names"]:
        cmd += ["--joint-names", get["joint_names"]]
    for cam in ("scene", "wrist"):
        if get[f"camera_{cam}"]:
            cmd += ["--remap", f"cameras/{cam}/image_raw:={get[f'camera_{cam}']}"]
    for rule in get["remaps"].split():
        cmd += ["--remap", rule]
    if get["hold_command"].lower() in ("1", "true", "yes"):
        cmd.append("--hold-command")
    if get["planner"]:
        cmd += ["--planner", get["planner"]]
    return [ExecuteProcess(cmd=cmd, output="screen", sigterm_timeout="10")]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(k, default_value=v, description=d) for k, (v, d) in ARGS.items()]
        + [OpaqueFunction(function=_command)]
    )
