"""Start seg_kd_ros's segmenter_node with a params file and the shipped Fast DDS profile.

Example:
    ros2 launch seg_kd_ros segmenter.launch.py model_path:=/models/student.onnx \
        image_topic:=/camera/image_raw namespace:=front
"""

import os

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'seg_kd_ros'
EXECUTABLE = 'segmenter_node'
TRUE_WORDS = ('true', '1', 'yes', 'on')
FAST_DDS_2_DISTROS = ('humble', 'iron')  # Fast DDS 2.x reads FASTRTPS_DEFAULT_PROFILES_FILE


def _dds_profile(context):
    """Point Fast DDS at the profile (the variable its version reads), unless it is empty."""
    path = LaunchConfiguration('fastdds_profile').perform(context)
    if not path:
        return []
    if os.environ.get('ROS_DISTRO', '').lower() in FAST_DDS_2_DISTROS:
        return [SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', path)]
    return [SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', path)]


def _segmenter(context):
    """The node, with command-line values given to the launch file overriding the params file."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {name: arg(name) for name in ('model_path', 'backend', 'device') if arg(name)}
    overrides['use_sim_time'] = arg('use_sim_time').lower() in TRUE_WORDS
    image_topic = arg('image_topic')
    parameters = [arg('params_file')] if arg('params_file') else []
    return [Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name='segmenter',
        namespace=arg('namespace'),
        parameters=parameters + [overrides],
        remappings=[('image', image_topic), ('image/compressed', image_topic + '/compressed')],
        output='screen',
        emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, set the DDS profile, start the node."""
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            'model_path', default_value='',
            description='Model file (.onnx, .engine or .pt2); empty: take it from params_file.'),
        DeclareLaunchArgument(
            'backend', default_value='',
            description='auto | tensorrt | onnxruntime | torch; empty: from params_file (auto).'),
        DeclareLaunchArgument(
            'device', default_value='',
            description='cpu | cuda | cuda:N; empty: from params_file (cpu).'),
        DeclareLaunchArgument(
            'image_topic', default_value='image',
            description='Camera topic the node subscribes (remaps `image`; `<topic>/compressed` '
                        'with input_transport: compressed).'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node; its outputs are <namespace>/segmenter/*.'),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([share, 'config', 'segmenter.yaml']),
            description='YAML file of node parameters (config/segmenter.yaml by default).'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='Use the /clock topic (true when playing a rosbag with --clock).'),
        DeclareLaunchArgument(
            'fastdds_profile',
            default_value=PathJoinSubstitution([share, 'config', 'fastdds_shm.xml']),
            description='Fast DDS XML profile (16 MiB shared memory for large images, same host '
                        'only); empty string: keep the environment as it is.'),
        OpaqueFunction(function=_dds_profile),
        OpaqueFunction(function=_segmenter),
    ])
