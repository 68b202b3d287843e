"""The ROS 2 planner node: a transport-free core (`core`: plain callbacks in, messages out) and two transports
(`rclpy` when a ROS 2 Python is importable, `dds`: cyclonedds speaking the ROS 2 wire format). Messages are the
ROS 2 Jazzy message dataclasses of `rosbags` (`messages.TYPES`), the same on both transports and in bags."""
