"""Evaluation: run a model over a split and score it per condition (mIoU, per-class IoU, ECE).

The predictor is either a PyTorch model (`forward` -> logits) or an exported ONNX model
(docs/model_file.md: `labels` and `confidence` outputs at the network's input size); both give a
label map and the max softmax probability per pixel at the ground truth's resolution.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812
from tqdm import tqdm

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


def onnx_predictor(path: str | Path) -> Predictor:
    """A predictor from an exported ONNX model (labels + confidence outputs).

    Images are resized bilinearly to the model's input size and the outputs back to the image size
    (labels nearest, confidence bilinear), as the node does.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    inp = session.get_inputs()[0]
    names = [o.name for o in session.get_outputs()]
    if 'labels' not in names or 'confidence' not in names:
        raise ValueError(f'{path}: expected outputs labels and confidence, found {names}')
    size = tuple(inp.shape[2:]) if all(isinstance(d, int) for d in inp.shape[2:]) else None

    def predict(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = images.shape[-2:]
        x = images.float()
        if size is not None and tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
        labels, conf = session.run(['labels', 'confidence'],
                                   {inp.name: np.ascontiguousarray(x.numpy())})
        labels = torch.from_numpy(labels.astype(np.int64))[:, None].float()
        conf = torch.from_numpy(conf.astype(np.float32))[:, None]
        labels = F.interpolate(labels, size=(h, w), mode='nearest')[:, 0].long()
        conf = F.interpolate(conf, size=(h, w), mode='bilinear', align_corners=False)[:, 0]
        return labels, conf

    return predict


def evaluate(predict: Predictor, dataset, num_classes: int, class_names: list[str] | None = None,
             max_images: int = 0, keep_samples: int = 0, progress: bool = False,
             ignore_index: int = IGNORE_INDEX) -> tuple[dict, list[dict]]:
    """Score a predictor on a dataset whose samples are tensors (`EvalTransform`).

    Args:
        predict: images [1, 3, H, W] -> (labels [1, H, W], confidence [1, H, W]).
        dataset: samples with `image` [3, H, W], `label` [H, W] and `condition`.
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
        pred, conf = predict(sample['image'][None])
        label = sample['label']
        evaluator.update(pred[0], conf[0], label, sample['condition'])
        cond = sample['condition']
        if per_condition.get(cond, 0) < keep_samples:
            per_condition[cond] = per_condition.get(cond, 0) + 1
            kept.append({'condition': cond, 'path': sample.get('path', ''),
                         'image': denormalize(sample['image']),
                         'label': label.numpy().astype(np.uint8),
                         'pred': pred[0].numpy().astype(np.uint8),
                         'confidence': conf[0].numpy()})
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
