"""Run launch/segmenter.launch.py as `ros2 launch` does and exit with the launch's status.

Usage: run_launch_file.py name:=value ... (the launch arguments). Used by test/test_launch.py
where launch and launch_ros are installed (a ROS 2 install).
"""

from pathlib import Path
import sys

from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

from launch import LaunchDescription, LaunchService

LAUNCH_FILE = Path(__file__).resolve().parents[2] / 'launch' / 'segmenter.launch.py'

if __name__ == '__main__':
    arguments = [word.split(':=', 1) for word in sys.argv[1:]]
    service = LaunchService()
    service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)), launch_arguments=arguments)]))
    sys.exit(service.run())
