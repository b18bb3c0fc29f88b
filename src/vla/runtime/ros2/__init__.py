"""vla policies on the ROS 2 graph (see docs/ros2.md)."""
