#!/usr/bin/env bash
# Build the interface packages under interfaces/ (vision_msgs' LabelInfo and VisionClass) into a
# venv that holds ROS 2 wheels from PyPI and their rosidl generators (requirements-interfaces.txt
# or requirements-jazzy.txt). Libraries go to VENV/lib, which the wheels' bootstrapper puts on
# LD_LIBRARY_PATH, and the Python package to VENV's site-packages, so `import vision_msgs.msg`
# works in that venv with nothing sourced. A system ROS 2 uses its own vision_msgs instead.
#
# Usage: scripts/build_interfaces.sh VENV
set -euo pipefail

venv=$(cd "${1:?usage: $0 VENV}" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
python=$venv/bin/python
[ -x "$python" ] || { echo "build_interfaces: $python not found: create the venv first" >&2; exit 1; }
command -v cmake >/dev/null && command -v c++ >/dev/null || {
    echo 'build_interfaces: cmake and a C++ compiler are needed (apt-get install cmake g++)' >&2
    exit 1
}

# Everything from the venv: its cmake packages, its python (the generators are python scripts).
export PATH=$venv/bin:$PATH AMENT_PREFIX_PATH=$venv CMAKE_PREFIX_PATH=$venv
jobs=$(nproc 2>/dev/null || echo 2)

for pkg_dir in "$repo"/interfaces/*/; do
    pkg=$(basename "$pkg_dir")
    [ -f "$pkg_dir/package.xml" ] || continue
    build=$venv/build/interfaces/$pkg
    rm -rf "$build"
    echo "build_interfaces: $pkg -> $venv"
    cmake -S "$pkg_dir" -B "$build" -Wno-dev --log-level=WARNING \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
        -DCMAKE_INSTALL_PREFIX="$venv" \
        -DPython3_EXECUTABLE="$python" \
        -DCMAKE_PROJECT_INCLUDE="$repo/interfaces/pip_python_paths.cmake"
    cmake --build "$build" -j "$jobs" -- --no-print-directory >/dev/null
    cmake --install "$build" >/dev/null
done

# A neutral working directory: the check must import the installed package, not a source folder.
cd "$venv"
"$python" - <<'EOF'
import json
import os
import sys

from vision_msgs.msg import LabelInfo, VisionClass

LabelInfo(class_map=[VisionClass(class_id=0, class_name='road')], threshold=0.5)
with open(os.path.join(sys.prefix, 'share', 'vision_msgs', 'msg', 'LabelInfo.json')) as f:
    hashes = json.load(f)['type_hashes']
print('build_interfaces: vision_msgs/msg/LabelInfo', hashes[0]['hash_string'])
EOF
