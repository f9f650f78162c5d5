"""launch_testing description for launch/segmenter.launch.py (run by test/test_launch.py).

Needs launch, launch_ros and launch_testing (a ROS 2 install) and seg_kd_ros installed in the
ament index (AMENT_PREFIX_PATH), so that FindPackageShare and the Node action find it. The model
comes from the environment variable SEG_KD_TEST_MODEL.
"""

import os
from pathlib import Path
import time
import unittest

from launch.actions import IncludeLaunchDescription
from launch.launch_description import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
import launch_testing
import launch_testing.actions
import launch_testing.asserts
import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from seg_kd_ros.image_conversion import numpy_to_imgmsg

LAUNCH_FILE = Path(__file__).resolve().parents[2] / 'launch' / 'segmenter.launch.py'
NAMESPACE = 'launch_check'
CAMERA = '/launch_check_camera/image_raw'


def generate_test_description():
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={'model_path': os.environ['SEG_KD_TEST_MODEL'],
                          'namespace': NAMESPACE, 'image_topic': CAMERA}.items())
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestSegmenterFromLaunchFile(unittest.TestCase):

    def test_labels_for_a_published_frame(self):
        rclpy.init()
        node = rclpy.create_node('launch_check_probe')
        received = []
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(Image, f'/{NAMESPACE}/segmenter/labels', received.append, qos)
        publisher = node.create_publisher(Image, CAMERA, qos)
        msg = numpy_to_imgmsg(np.full((24, 40, 3), 90, np.uint8), 'rgb8')
        msg.header.frame_id = 'launch_check_camera'
        msg.header.stamp = node.get_clock().now().to_msg()
        try:
            deadline = time.monotonic() + 60.0
            while not received and time.monotonic() < deadline:
                publisher.publish(msg)
                rclpy.spin_once(node, timeout_sec=0.5)
            self.assertTrue(received, 'no labels from the launched node')
            labels = received[0]
            self.assertEqual((labels.encoding, labels.width, labels.height), ('mono8', 40, 24))
            self.assertEqual(labels.header.frame_id, 'launch_check_camera')
        finally:
            node.destroy_node()
            rclpy.try_shutdown()


@launch_testing.post_shutdown_test()
class TestSegmenterExit(unittest.TestCase):

    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
