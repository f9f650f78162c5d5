"""The Fast DDS profile the node uses when the user has chosen none.

Without it, a frame larger than Fast DDS's default 512 KiB shared-memory segment travels as UDP
fragments, which a best-effort reader loses (1024x512 rgb8 is 1.5 MiB). config/fastdds_shm.xml
gives a 16 MiB segment, with UDP on 127.0.0.1 as the fallback.
"""

import os
from pathlib import Path

# Fast DDS 3 (Jazzy, Kilted) reads the first (and the second with a deprecation warning),
# Fast DDS 2 (Humble, Iron) only the second.
PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
FAST_DDS_2_DISTROS = ('humble', 'iron')


def profile_variable() -> str:
    """The variable this distro's Fast DDS reads (ROS_DISTRO; unset, as in the pip venvs: 3)."""
    fast_dds_2 = os.environ.get('ROS_DISTRO', '').lower() in FAST_DDS_2_DISTROS
    return PROFILE_VARIABLES[1] if fast_dds_2 else PROFILE_VARIABLES[0]


def shipped_dds_profile() -> Path | None:
    """config/fastdds_shm.xml from the installed package share, or from this checkout."""
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates = [Path(get_package_share_directory('seg_kd_ros')) / 'config']
    except (ImportError, LookupError, OSError):  # no ament index: a pip or source checkout
        candidates = []
    candidates.append(Path(__file__).resolve().parents[1] / 'config')
    return next((c / 'fastdds_shm.xml' for c in candidates
                 if (c / 'fastdds_shm.xml').is_file()), None)


def use_shipped_dds_profile() -> str | None:
    """Give Fast DDS the shipped profile unless the user chose one or another RMW.

    Must run before the process's first DDS participant exists (before rclpy.init).

    Returns:
        The profile set, or None when the environment is left as it was.
    """
    if any(os.environ.get(v) for v in PROFILE_VARIABLES):
        return None
    if 'fastrtps' not in os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp'):
        return None
    profile = shipped_dds_profile()
    if profile is not None:
        os.environ[profile_variable()] = str(profile)
    return str(profile) if profile else None
