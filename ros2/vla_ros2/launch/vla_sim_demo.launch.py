"""The whole loop on one machine: the vla node on a checkpoint and the simulated tabletop robot.

    ros2 launch vla_ros2 vla_sim_demo.launch.py checkpoint:=/path/to/checkpoint families:=pick_up,touch

The simulator (`vla ros2 sim`) speaks DDS directly and the node runs on rclpy; both are on the same
ROS_DOMAIN_ID, so `ros2 topic echo /vla_policy/status` and `ros2 action list` show them.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration

ARGS = {
    "checkpoint": ("", "checkpoint directory (required)"),
    "vla": ("vla", "the vla executable"),
    "families": ("", "comma-separated task families (default: all)"),
    "episodes": ("10", "episodes per family"),
    "seed": ("100000", "seed of episode 0"),
}


def _processes(context, *_):
    get = {k: LaunchConfiguration(k).perform(context) for k in ARGS}
    if not get["checkpoint"]:
        raise RuntimeError("vla_sim_demo.launch.py needs checkpoint:=/path/to/checkpoint")
    node = [get["vla"], "ros2", "node", "--transport", "rclpy", "--checkpoint", get["checkpoint"]]
    sim = [get["vla"], "ros2", "sim", "tabletop", "--episodes", get["episodes"], "--seed", get["seed"]]
    if get["families"]:
        sim += ["--families", get["families"]]
    return [ExecuteProcess(cmd=node, output="screen"), ExecuteProcess(cmd=sim, output="screen")]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(k, default_value=v, description=d) for k, (v, d) in ARGS.items()]
        + [OpaqueFunction(function=_processes)]
    )
