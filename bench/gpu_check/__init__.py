"""The GPU check: one prepared run of the project's GPU paths (`bash bench/gpu_check.sh`).

`__main__` runs the parts, each in its own process with a time budget: `part_train` (AMP training,
checkpoint and resume), `part_infer` (every model's fast paths on CUDA), `part_runtime` (the
runtime's PyTorch backend, GPU copies, frame pipeline and node), `part_tensorrt` (the
TensorRT tests). `report` writes the JSON and Markdown and prints the summary.
"""
