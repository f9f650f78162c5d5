"""Evaluation: run a model over a split and score it per condition (mIoU, per-class IoU, ECE).

The predictor is either a PyTorch model (`forward` -> logits, on normalised tensors) or a model
file (`.onnx`, `.pt2`, `.engine`; docs/model_file.md) run exactly as the node runs it: the
runtime's backend inside the node's frame pipeline (`seg_kd_ros.node_pipeline`), fed the frame's
raw bytes at their own size, outputs resized back with the node's conventions. So `seg-kd eval` of
a model file scores what the node publishes. Both give a label map and the max softmax
probability per pixel at the ground truth's resolution.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812
from tqdm import tqdm

from seg_kd_ros.model_metadata import ModelMetadata
from seg_kd_ros.postprocess import IGNORE_INDEX
from seg_kd_train.evaluation.metrics import SegmentationEvaluator

Predictor = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def torch_predictor(model: nn.Module, device: torch.device, temperature: float = 1.0,
                    amp: bool = False) -> Predictor:
    """A predictor from a model whose `forward` returns logits at input resolution."""
    model.eval()

    @torch.no_grad()
    def predict(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device.type, enabled=amp and device.type == 'cuda'):
            logits = model(images.to(device))
        prob = F.softmax(logits.float() / temperature, dim=1)
        conf, pred = prob.max(dim=1)
        return pred.cpu(), conf.cpu()

    return predict


def model_file_predictor(path: str | Path, device: str = 'cpu',
                         backend: str = 'auto') -> tuple[Callable, ModelMetadata]:
    """A predictor that runs a model file as the node does, and the file's metadata.

    The predictor takes one raw frame (uint8 RGB `[H, W, 3]`, any size) and returns uint8 labels
    and float32 confidence `[H, W]` at the frame's size: `SegmentationPipeline.run` with
    `output_resolution='input'` and no threshold, the node's own code.

    Raises:
        ModelLoadError: a file the node would refuse, with the node's message.
    """
    from seg_kd_ros.backends import create_backend
    from seg_kd_ros.node_pipeline import SegmentationPipeline

    runner = create_backend(path, backend, device)
    pipeline = SegmentationPipeline(runner, runner.metadata.palette)

    def predict(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = pipeline.run(np.ascontiguousarray(rgb), 'input', 0.0)
        return result.labels, result.confidence

    return predict, runner.metadata


class RawResize:
    """Resize a raw sample (the frame as a camera of that size would give it) for model files.

    The image bilinearly (`resize_to_network`, the node's pre-processing), the label with the
    one label convention (`resize_labels`, nearest-exact); the image stays uint8, unnormalised.
    """

    def __init__(self, size: tuple[int, int]):
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, sample: dict) -> dict:
        """Return a new sample dict at `size`."""
        from seg_kd_ros.postprocess import resize_labels
        from seg_kd_ros.preprocessing import resize_to_network

        out = dict(sample)
        out['image'] = resize_to_network(sample['image'], self.size)
        out['label'] = resize_labels(np.asarray(sample['label']), self.size)
        return out


MODEL_FILE_TYPES = ('.onnx', '.pt2', '.engine')


@dataclass
class EvalModel:
    """A model ready to score: its predictor, classes, the samples' transform, a description."""

    predict: Callable
    num_classes: int
    names: list[str] | None
    palette: list | None
    transform: Callable | None
    description: str


def open_for_evaluation(path: Path, device: str | None = None, temperature: float = 1.0,
                        size: tuple[int, int] | None = None) -> EvalModel:
    """A weights file (run in PyTorch) or a model file (run as the node runs it), to score.

    Args:
        path: `.safetensors` weights, or a `.onnx` / `.pt2` / `.engine` model file.
        device: 'cpu', 'cuda' or 'cuda:N' (None: CUDA if available for weights, CPU for files).
        temperature: softmax temperature of the confidence (weights only; a model file has its
            own).
        size: resize the frames to (height, width) first (None: native).
    """
    from seg_kd_train.data.transforms import EvalTransform

    if path.suffix in MODEL_FILE_TYPES:
        predict, meta = model_file_predictor(path, device or 'cpu')
        return EvalModel(predict, meta.num_classes, list(meta.classes), meta.palette,
                         RawResize(size) if size else None,
                         f'model file {path} ({meta.model_name}, run as the node runs it)')
    from seg_kd_train.export.metadata import weights_classes
    from seg_kd_train.models.weights import load_model_weights, read_weights_metadata

    meta = read_weights_metadata(path)
    torch_device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    model = load_model_weights(path).to(torch_device)
    names, palette = weights_classes(meta)  # those its exported model file will carry
    return EvalModel(torch_predictor(model, torch_device, temperature), meta['num_classes'],
                     names, palette, EvalTransform(size),
                     f'{meta["model_name"]} {meta["model_kwargs"]} from {path} (recipe '
                     f'{meta.get("recipe", "?")}, step {meta.get("step", "?")})')


def evaluate(predict: Predictor, dataset, num_classes: int, class_names: list[str] | None = None,
             max_images: int = 0, keep_samples: int = 0, progress: bool = False,
             ignore_index: int = IGNORE_INDEX) -> tuple[dict, list[dict]]:
    """Score a predictor on a dataset whose samples are tensors (`EvalTransform`).

    Args:
        predict: images [1, 3, H, W] -> (labels [1, H, W], confidence [1, H, W]) for tensor
            samples; a raw frame uint8 [H, W, 3] -> (labels [H, W], confidence [H, W]) for raw
            samples (`model_file_predictor`).
        dataset: samples with `image` (normalised tensor [3, H, W], or the raw uint8 frame),
            `label` [H, W] and `condition`.
        num_classes: number of classes.
        class_names: names for the per-class IoU.
        max_images: score only the first images (0: all).
        keep_samples: keep this many samples per condition (image, label, prediction) for a report.
        progress: show a progress bar.
        ignore_index: ground-truth value left out.

    Returns:
        (`SegmentationEvaluator.summary()`, kept samples)
    """
    from seg_kd_train.data.transforms import denormalize

    evaluator = SegmentationEvaluator(num_classes, class_names, ignore_index)
    count = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    kept: list[dict] = []
    per_condition: dict[str, int] = {}
    for i in tqdm(range(count), desc='eval', disable=not progress, leave=False):
        sample = dataset[i]
        image = sample['image']
        if isinstance(image, np.ndarray):  # a raw frame, given to a model file as the node gets it
            pred, conf = predict(image)
            shown = image
        else:
            pred, conf = predict(image[None])
            pred, conf, shown = pred[0], conf[0], denormalize(image)
        label = sample['label']
        evaluator.update(pred, conf, label, sample['condition'])
        cond = sample['condition']
        if per_condition.get(cond, 0) < keep_samples:
            per_condition[cond] = per_condition.get(cond, 0) + 1
            kept.append({'condition': cond, 'path': sample.get('path', ''),
                         'image': shown, 'label': np.asarray(label).astype(np.uint8),
                         'pred': np.asarray(pred).astype(np.uint8),
                         'confidence': np.asarray(conf)})
    summary = evaluator.summary()
    summary['_reliability'] = {name: evaluator.calibration[name].reliability()
                               for name in evaluator.calibration}
    return summary, kept


def headline(summary: dict) -> dict[str, float]:
    """Flat numbers of a summary: miou_<condition>, ece_<condition>, miou_full, ece_full, ..."""
    out = {}
    for name, block in summary.items():
        if name.startswith('_'):
            continue
        out[f'miou_{name}'] = float(block['miou'])
        out[f'ece_{name}'] = float(block['ece'])
    out['pixel_accuracy_full'] = float(summary['full']['pixel_accuracy'])
    return out
