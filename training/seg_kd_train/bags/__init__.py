"""Ros2 bags: dataset splits into bags, and bags played into a running segmenter_node.

`make_bag` writes a split into a bag; `bag_eval` (with `reader`, `player` and `report`) plays a bag
into the node and scores it. Only `player` touches rclpy, and only when a `NodePlayer` is made.
"""
