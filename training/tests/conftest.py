"""Training tests: DDS on the loopback like the runtime's, and the runtime's test helpers."""

import os
from pathlib import Path
import sys

import pytest

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', '73')
# tiny_models and node_harness live with the runtime's tests; the integration tests reuse them.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'test'))


@pytest.fixture
def torch_one_thread():
    """Run torch on one thread: on a shared 2-core CPU, OpenMP threads spin-waiting for each other
    make small training steps many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
