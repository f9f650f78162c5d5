"""Deployment: ONNX and `.pt2` export, temperature calibration, TensorRT engines, benchmarks.

Submodules are imported where used (tensorrt and cuda-python only for engines).
"""
