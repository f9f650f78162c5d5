"""Test-wide settings: DDS stays on the loopback, with a domain of the test run's own."""

import os
from pathlib import Path
import sys

import pytest

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', '73')
sys.path.insert(0, str(Path(__file__).parent))  # test helpers such as tiny_models


@pytest.fixture
def torch_one_thread():
    """Run torch on one thread: on a shared 2-core CPU, OpenMP threads spin-waiting for each other
    make small training steps many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
