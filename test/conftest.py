"""Runtime and node tests: DDS stays on the loopback, with a domain of the test run's own.

These tests run with no torch installed (the torch-free venv of `make test`); training's tests are
in training/tests.
"""

import os
from pathlib import Path
import sys

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', '73')
sys.path.insert(0, str(Path(__file__).parent))  # test helpers such as tiny_models
