#!/usr/bin/env bash
# The GPU check: training with AMP, inference fast paths, the runtime on CUDA and the TensorRT
# tests, in one call of at most 8 minutes on a GPU machine; JSON, Markdown and a log in OUT_DIR.
#
#   bash bench/gpu_check.sh OUT_DIR             # on a machine with a CUDA GPU
#   bash bench/gpu_check.sh --dry-run OUT_DIR   # the same plan on the CPU, tiny sizes (< 2 min)
#   bash bench/gpu_check.sh --fetch-ros-wheels  # download the ROS 2 Kilted cp312 wheels into
#                                               # .whl/ros (about 43 MiB) to carry to the GPU
#
# Runs from the repository without installing it (PYTHONPATH=.:training). Python: $PYTHON, else
# .venv/bin/python if it exists, else python3. Extra arguments (e.g. --parts infer,runtime) go to
# `python -m bench.gpu_check`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fetch-ros-wheels" ]; then
    # cp312 manylinux wheels of the ROS 2 runtime closure of requirements.txt's five ROS pins,
    # without their build-time tools; pip's ordinary client, the registry the venv uses.
    PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
    mkdir -p .whl/ros
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d .whl/ros \
        -r bench/gpu_check/ros_wheels.txt
    du -sh .whl/ros
    exit 0
fi

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH=".:training${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-73}
exec "$PYTHON" -m bench.gpu_check "$@"
