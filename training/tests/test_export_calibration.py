"""Temperature scaling: the fit recovers a known temperature and lowers the ECE."""

import numpy as np
import pytest
import torch

from seg_kd_train.export.calibration import (
    calibrate,
    collect_logits,
    expected_calibration_error,
    fit_temperature,
    nll,
)


def synthetic_logits(true_temperature: float, pixels: int = 40000, classes: int = 19,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose labels are drawn from softmax(logits / true_temperature)."""
    generator = torch.Generator().manual_seed(seed)
    calibrated = torch.randn(pixels, classes, generator=generator) * 2.0
    labels = torch.multinomial(torch.softmax(calibrated, 1), 1, generator=generator).squeeze(1)
    return calibrated * true_temperature, labels


@pytest.mark.parametrize('true_temperature', [0.6, 2.5])
def test_fit_recovers_known_temperature_and_lowers_ece(true_temperature):
    logits, labels = synthetic_logits(true_temperature)
    result = calibrate(logits, labels, images=1)
    assert result.temperature == pytest.approx(true_temperature, rel=0.05)
    assert result.nll_after < result.nll_before
    assert result.ece_after < result.ece_before
    assert result.ece_after < 0.02
    assert result.pixels == labels.numel()
    # The fitted T is a minimum of the NLL: nudging it either way does not help.
    t = result.temperature
    assert nll(logits, labels, t) <= min(nll(logits, labels, t * 1.05),
                                         nll(logits, labels, t / 1.05))


def test_calibrated_logits_keep_temperature_one():
    logits, labels = synthetic_logits(1.0, seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.05)
    assert expected_calibration_error(logits, labels, 1.0) < 0.02


def test_collect_logits_subsamples_valid_pixels_only():
    class Const(torch.nn.Module):
        num_classes = 3

        def forward(self, x):
            return x[:, :3] * 0 + torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)

    images = np.zeros((2, 3, 8, 8), np.float32)
    labels = np.full((2, 8, 8), 255, np.uint8)
    labels[0, :2] = 1  # 16 valid pixels in image 0
    labels[1, :, :5] = 2  # 40 valid pixels in image 1
    labels[1, 0, 0] = 7  # out of range: ignored as well
    logits, kept, count = collect_logits(Const(), [(images, labels)], num_classes=3,
                                         pixels_per_image=20)
    assert count == 2
    assert logits.shape == (16 + 20, 3)
    assert set(kept.tolist()) == {1, 2}
    assert torch.equal(logits[0], torch.tensor([1.0, 2.0, 3.0]))


def test_collect_logits_without_valid_pixels_is_an_error():
    images = np.zeros((1, 3, 4, 4), np.float32)
    labels = np.full((1, 4, 4), 255, np.uint8)
    with pytest.raises(ValueError, match='no labelled pixel'):
        collect_logits(torch.nn.Conv2d(3, 4, 1), [(images, labels)], num_classes=4)
