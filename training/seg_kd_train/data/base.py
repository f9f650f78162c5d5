"""What every dataset shares: image/label reading, layout errors, and the sample-list dataset base.

Datasets here are plain map-style datasets (`__len__`, `__getitem__`), which is all
`torch.utils.data.DataLoader` needs, so listing and reading data never imports torch.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seg_kd_ros.postprocess import IGNORE_INDEX
from seg_kd_train.errors import SegKdError

cv2.setNumThreads(1)  # DataLoader workers already run in parallel


class DatasetLayoutError(SegKdError, FileNotFoundError):
    """A dataset root does not have the expected layout, or an image has no label."""


class DatasetReadError(SegKdError, OSError):
    """An image or label file is missing or cannot be decoded."""


class DatasetOptionError(SegKdError, ValueError):
    """A dataset option (split, conditions, label kind) that the dataset does not have."""


def layout_error(name: str, root: Path, expected: str, found: str) -> DatasetLayoutError:
    """The error for a root that does not match a layout: what was found and what was expected.

    One line (the CLI prints it as one): the expected layout's lines are joined.
    """
    layout = ' '.join(line.strip() for line in expected.splitlines() if line.strip())
    return DatasetLayoutError(f'{name} root {root} does not match the expected layout: {found}; '
                              f'expected {layout}')


def describe_dir(path: Path, limit: int = 8) -> str:
    """Describe what a directory holds (a few entries), for error messages."""
    if not path.exists():
        return f'{path} does not exist'
    if not path.is_dir():
        return f'{path} is not a directory'
    entries = sorted(p.name + ('/' if p.is_dir() else '') for p in path.iterdir())
    if not entries:
        return f'{path} is empty'
    more = f' ... ({len(entries) - limit} more)' if len(entries) > limit else ''
    return f'{path} contains ' + ', '.join(entries[:limit]) + more


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as HxWx3 uint8 RGB, raising `DatasetReadError` naming the file if it fails."""
    path = str(path)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetReadError(f'cannot read image {path} (missing, unreadable or corrupt)')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path) -> np.ndarray:
    """Read a single-channel label PNG as HxW uint8, raising `DatasetReadError` naming the file."""
    path = str(path)
    lab = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DatasetReadError(f'cannot read label {path} (missing, unreadable or corrupt)')
    if lab.ndim != 2:
        raise DatasetReadError(f'label {path} has shape {lab.shape}, expected one channel')
    if lab.dtype != np.uint8:
        if lab.max(initial=0) > 255:
            raise DatasetReadError(f'label {path} has values above 255 ({lab.dtype})')
        lab = lab.astype(np.uint8)
    return lab


@dataclass(frozen=True)
class SampleRecord:
    """Where one sample lives on disk.

    Attributes:
        image: path of the RGB image.
        label: path of the label (None: no label, e.g. a test split; the label is all 255).
        condition: weather/lighting condition ('fog', 'night', 'rain', 'snow', 'clear', ...).
        invalid: optional path of an invalid-region mask (non-zero = invalid).
    """

    image: Path
    label: Path | None
    condition: str
    invalid: Path | None = None


class SegDataset:
    """Base of the datasets: a sorted list of `SampleRecord` and a reader.

    Subclasses fill `self.records` and may override `decode_label`.

    Args:
        name: dataset name reported in every sample.
        transform: callable taking and returning a sample dict (see `__getitem__`), or None.
    """

    def __init__(self, name: str, transform: Callable[[dict], dict] | None = None):
        self.name = name
        self.transform = transform
        self.records: list[SampleRecord] = []

    def __len__(self) -> int:
        return len(self.records)

    @property
    def conditions(self) -> list[str]:
        """The conditions of the samples, one per sample (for grouping and sampling)."""
        return [r.condition for r in self.records]

    def decode_label(self, raw: np.ndarray, record: SampleRecord) -> np.ndarray:
        """Turn a label file's pixels into trainIds (identity by default)."""
        return raw

    def load(self, index: int) -> dict:
        """Read sample `index` without the transform."""
        if not -len(self) <= index < len(self):
            raise IndexError(f'{self.name}: index {index} out of range for {len(self)} samples')
        rec = self.records[index]
        image = read_rgb(rec.image)
        if rec.label is None:
            label = np.full(image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        else:
            label = self.decode_label(read_label(rec.label), rec)
            if label.shape != image.shape[:2]:
                raise DatasetReadError(
                    f'label {rec.label} is {label.shape[1]}x{label.shape[0]} but image '
                    f'{rec.image} is {image.shape[1]}x{image.shape[0]}'
                )
        if rec.invalid is not None:
            invalid = read_label(rec.invalid)
            if invalid.shape != label.shape:
                raise DatasetReadError(f'invalid mask {rec.invalid} has shape {invalid.shape}')
            label = label.copy()
            label[invalid > 0] = IGNORE_INDEX
        return {
            'image': image,
            'label': label,
            'condition': rec.condition,
            'dataset': self.name,
            'path': str(rec.image),
            'index': index % len(self),
        }

    def __getitem__(self, index: int) -> dict:
        """Sample dict: `image`, `label`, `condition`, `dataset`, `path`, `index`.

        Without a transform `image` is HxWx3 uint8 RGB and `label` HxW uint8 trainIds (255 =
        ignore); a transform decides what they become (tensors for the train/eval transforms).
        """
        sample = self.load(index)
        return self.transform(sample) if self.transform is not None else sample


def check_split(name: str, split: str, allowed: Sequence[str]) -> None:
    """Reject an unknown split name with the list of known ones."""
    if split not in allowed:
        raise DatasetOptionError(f'{name}: unknown split {split!r}; expected one of '
                                 f'{list(allowed)}')
