"""Start seg_kd_ros's segmenter_node with a params file and the shipped Fast DDS profile.

Example:
    ros2 launch seg_kd_ros segmenter.launch.py model_path:=/models/student.onnx \
        image_topic:=/camera/image_raw namespace:=front

A node that cannot start (a missing model, a bad parameter) takes the launch down with a non-zero
exit status and the node's one-line reason.
"""

import os

from launch.actions import (
    DeclareLaunchArgument,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnProcessExit
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'seg_kd_ros'
EXECUTABLE = 'segmenter_node'
TRUE_WORDS = ('true', '1', 'yes', 'on')
FAST_DDS_2_DISTROS = ('humble', 'iron')  # Fast DDS 2.x reads FASTRTPS_DEFAULT_PROFILES_FILE
KEEP_ENVIRONMENT = ('env', '')  # fastdds_profile words that leave the environment as it is


class NodeFailedError(RuntimeError):
    """The node exited with an error while the launch was running."""


def _dds_profile(context):
    """Point Fast DDS at the profile (the variable its version reads), unless it is empty."""
    path = LaunchConfiguration('fastdds_profile').perform(context)
    if path.strip().lower() in KEEP_ENVIRONMENT:
        return []
    if os.environ.get('ROS_DISTRO', '').lower() in FAST_DDS_2_DISTROS:
        return [SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', path)]
    return [SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', path)]


def _segmenter(context):
    """The node, with command-line values given to the launch file overriding the params file."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {name: arg(name) for name in ('backend', 'device') if arg(name)}
    if arg('model_path'):
        overrides['model_path'] = os.path.expanduser(arg('model_path'))
    if arg('use_sim_time'):  # only when given: a params file may set it
        overrides['use_sim_time'] = arg('use_sim_time').lower() in TRUE_WORDS
    image_topic = arg('image_topic')
    parameters = [os.path.expanduser(arg('params_file'))] if arg('params_file') else []
    node = Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name='segmenter',
        namespace=arg('namespace'),
        parameters=parameters + [overrides],
        remappings=[('image', image_topic), ('image/compressed', image_topic + '/compressed')],
        ros_arguments=['--log-level', arg('log_level')],
        output='screen',
        emulate_tty=True,
    )
    return [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_node_exited))]


def _node_exited(event, context):
    """Fail the launch when the node exits with an error before a shutdown was asked for.

    An exception in an event handler is what makes `ros2 launch` return a non-zero status
    (LaunchService.run); a Shutdown action alone would end it with 0.
    """
    if event.returncode != 0 and not context.is_shutdown:
        raise NodeFailedError(f'{EXECUTABLE} exited with status {event.returncode} (its '
                              'reason is the line above)')


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
            'use_sim_time', default_value='',
            description='true: use the /clock topic (a rosbag played with --clock); empty: as '
                        'params_file says (false by default).'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            description='Log level of the node: debug | info | warn | error | fatal.'),
        DeclareLaunchArgument(
            'fastdds_profile',
            default_value=PathJoinSubstitution([share, 'config', 'fastdds_shm.xml']),
            description='Fast DDS XML profile (16 MiB shared memory for large images, same host '
                        'only); env: keep the environment as it is (the node then applies this '
                        'profile itself only if none is set).'),
        OpaqueFunction(function=_dds_profile),
        OpaqueFunction(function=_segmenter),
    ])
