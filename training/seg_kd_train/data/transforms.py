"""Transforms shared by teachers and students: scale, crop, flip, colour jitter, normalisation.

Determinism: `TrainTransform.augment` draws every random number from the generator it is given,
never from global state; the training data (`seg_kd_train.train.train_data.KeyedTrainDataset`)
seeds it with (seed, epoch, sample index), so a sample gets the same augmentation in the same epoch
whatever the number of DataLoader workers or their order.

Labels are only ever resized nearest-exact (`seg_kd_ros.postprocess.resize_labels`, the node's
convention) and padded with the ignore label.
"""

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from seg_kd_ros.postprocess import resize_labels
from seg_kd_train.data.cityscapes_labels import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD


def to_tensor(
    image: np.ndarray,
    label: np.ndarray,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise an HxWx3 uint8 (or float 0-255) RGB image and convert both to tensors.

    Returns:
        image float32 [3, H, W] = (pixel / 255 - mean) / std, label int64 [H, W].
    """
    img = image.astype(np.float32) * (1.0 / 255.0)
    img -= np.asarray(mean, dtype=np.float32)
    img /= np.asarray(std, dtype=np.float32)
    img_t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    return img_t, torch.from_numpy(label.astype(np.int64))


def denormalize(
    image: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """Invert `to_tensor` for display: [3, H, W] normalised -> HxWx3 uint8 RGB."""
    img = image.detach().cpu().numpy().transpose(1, 2, 0) * np.asarray(std) + np.asarray(mean)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def resize_pair(
    image: np.ndarray, label: np.ndarray, size_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Resize image bilinearly (area when shrinking a lot) and label nearest-exact."""
    h, w = size_hw
    if image.shape[:2] == (h, w):
        return image, label
    shrink = h * w < 0.5 * image.shape[0] * image.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    image = cv2.resize(image, (w, h), interpolation=interp)
    label = resize_labels(label, (h, w))  # the project's one label convention: nearest-exact
    return image, label


def photometric_jitter(
    image: np.ndarray, rng: np.random.Generator, strength: Sequence[float]
) -> np.ndarray:
    """Random brightness, contrast, saturation (factors 1 +- s) and hue (+- s of a turn).

    Args:
        image: HxWx3 uint8 RGB.
        rng: the generator to draw from.
        strength: (brightness, contrast, saturation, hue) amplitudes.

    Returns:
        HxWx3 uint8 RGB.
    """
    b, c, s, h = strength
    img = image
    if h > 0:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        shift = int(round(rng.uniform(-h, h) * 180))
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    out = img.astype(np.float32)
    out *= rng.uniform(1 - b, 1 + b)
    gray = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    cf = rng.uniform(1 - c, 1 + c)
    out = (out - gray.mean()) * cf + gray.mean()
    sf = rng.uniform(1 - s, 1 + s)
    gray = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = (out - gray[..., None]) * sf + gray[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


class TrainTransform:
    """Random scale, crop (ignore padding), horizontal flip, weather, photometric jitter.

    Args:
        crop_size: (height, width) of the output.
        scale_range: uniform range of the random scale applied to the image's own size.
        hflip_prob: probability of a horizontal flip.
        jitter: (brightness, contrast, saturation, hue) amplitudes; all zeros disables it.
        jitter_prob: probability of applying the photometric jitter.
        weather_prob: probability of rendering a random synthetic weather effect on the (real)
            image (`seg_kd_train.data.synth.weather`), 0 disables it.
        weather_conditions: which effects to draw from.
        mean: normalisation mean (RGB, [0, 1] units).
        std: normalisation std.
    """

    def __init__(
        self,
        crop_size: tuple[int, int],
        scale_range: tuple[float, float] = (0.5, 2.0),
        hflip_prob: float = 0.5,
        jitter: Sequence[float] = (0.3, 0.3, 0.3, 0.02),
        jitter_prob: float = 0.8,
        weather_prob: float = 0.0,
        weather_conditions: Sequence[str] = ('fog', 'night', 'rain', 'snow'),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        if len(crop_size) != 2 or min(crop_size) < 1:
            raise ValueError(f'crop_size must be (height, width) > 0, got {crop_size}')
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f'scale_range must be 0 < low <= high, got {scale_range}')
        if len(jitter) != 4:
            raise ValueError(f'jitter must be 4 amplitudes, got {jitter}')
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.hflip_prob = hflip_prob
        self.jitter = tuple(float(j) for j in jitter)
        self.jitter_prob = jitter_prob
        self.weather_prob = weather_prob
        self.weather_conditions = tuple(weather_conditions)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self._pad_value = tuple(int(round(m * 255)) for m in mean)

    def augment(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        """Apply the geometric and photometric augmentation to uint8 arrays (no normalisation).

        Returns:
            (image HxWx3 uint8, label HxW uint8) at `crop_size`.
        """
        ch, cw = self.crop_size
        s = rng.uniform(*self.scale_range)
        h, w = image.shape[:2]
        sh, sw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        image, label = resize_pair(image, label, (sh, sw))
        ph, pw = max(ch - sh, 0), max(cw - sw, 0)
        if ph or pw:
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                       value=self._pad_value)
            label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                       value=IGNORE_INDEX)
        y0 = int(rng.integers(0, image.shape[0] - ch + 1))
        x0 = int(rng.integers(0, image.shape[1] - cw + 1))
        image = image[y0:y0 + ch, x0:x0 + cw]
        label = label[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < self.hflip_prob:
            image = image[:, ::-1]
            label = label[:, ::-1]
        image = np.ascontiguousarray(image)
        label = np.ascontiguousarray(label)
        if self.weather_prob > 0 and rng.random() < self.weather_prob:
            from seg_kd_train.data.synth.weather import augment_weather

            cond = self.weather_conditions[int(rng.integers(len(self.weather_conditions)))]
            image = augment_weather(image, cond, rng)
        if any(self.jitter) and rng.random() < self.jitter_prob:
            image = photometric_jitter(image, rng, self.jitter)
        return image, label


class EvalTransform:
    """Optional resize (label nearest) and normalisation, no randomness.

    Args:
        size: (height, width) to resize to, or None to keep the native size.
        mean: normalisation mean (RGB, [0, 1] units).
        std: normalisation std.
    """

    def __init__(
        self,
        size: tuple[int, int] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.mean = tuple(mean)
        self.std = tuple(std)

    def __call__(self, sample: dict) -> dict:
        """Transform a sample dict (needs `image`, `label`); returns a new dict."""
        image, label = sample['image'], sample['label']
        if self.size is not None:
            image, label = resize_pair(image, label, self.size)
        out = dict(sample)
        out['image'], out['label'] = to_tensor(image, label, self.mean, self.std)
        return out

