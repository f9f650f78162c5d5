"""Losses against hand-computed values and identities (seg_kd_train.losses)."""

import math

import numpy as np
import pytest
import torch

from seg_kd_train.losses import (
    Adapter,
    BorderFocalLoss,
    BoundaryAwareCELoss,
    BoundaryBCELoss,
    ChannelWiseDivergence,
    CrossEntropyLoss,
    L2FeatureLoss,
    LADLoss,
    OhemCrossEntropyLoss,
    PidnetLoss,
    PixelKLDivLoss,
    border_weights,
    edge_target,
)

pytestmark = pytest.mark.usefixtures('torch_one_thread')


def pixels(*columns):
    """Logits [1, C, 1, P] from P per-pixel logit vectors."""
    return torch.tensor(columns, dtype=torch.float32).T[None, :, None, :].contiguous()


def labels_of(*values):
    return torch.tensor(values, dtype=torch.int64)[None, None, :]


def log_softmax(v):
    m = max(v)
    z = math.log(sum(math.exp(x - m) for x in v)) + m
    return [x - z for x in v]


def test_cross_entropy_matches_hand_value_and_ignores_255():
    logits = pixels([2.0, 1.0, 0.0], [0.0, 0.0, 3.0], [9.0, -9.0, 0.0])
    labels = labels_of(0, 2, 255)
    expected = -(log_softmax([2, 1, 0])[0] + log_softmax([0, 0, 3])[2]) / 2
    assert CrossEntropyLoss()(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    all_ignored = CrossEntropyLoss()(logits, labels_of(255, 255, 255))
    assert all_ignored.item() == 0.0


def test_ohem_keeps_only_hard_pixels():
    # gt-class probabilities: 0.9, 0.5, 0.2, 0.1 (two classes)
    q = [0.9, 0.5, 0.2, 0.1]
    logits = pixels(*[[math.log(p), math.log(1 - p)] for p in q])
    labels = labels_of(0, 0, 0, 0)
    # min_kept 1: threshold = max(q_sorted[1] = 0.2, thresh 0.3) = 0.3 -> pixels with q < 0.3
    got = OhemCrossEntropyLoss(thresh=0.3, min_kept=1)(logits, labels).item()
    assert got == pytest.approx((-math.log(0.2) - math.log(0.1)) / 2, rel=1e-5)
    # min_kept 2: threshold = max(q_sorted[2] = 0.5, 0.3) = 0.5 -> still 0.2 and 0.1
    got = OhemCrossEntropyLoss(thresh=0.3, min_kept=2)(logits, labels).item()
    assert got == pytest.approx((-math.log(0.2) - math.log(0.1)) / 2, rel=1e-5)
    # min_kept 3: threshold = q_sorted[3] = 0.9 -> 0.5, 0.2, 0.1
    got = OhemCrossEntropyLoss(thresh=0.3, min_kept=3)(logits, labels).item()
    assert got == pytest.approx(-(math.log(0.5) + math.log(0.2) + math.log(0.1)) / 3, rel=1e-5)
    # ignore pixels are never kept
    got = OhemCrossEntropyLoss(thresh=0.3, min_kept=1)(logits, labels_of(0, 0, 255, 0)).item()
    assert got == pytest.approx(-math.log(0.1), rel=1e-5)


def test_border_weights_follow_distance_bins():
    label = np.zeros((40, 40), np.uint8)
    label[:, 20:] = 1
    label[0, :] = 255
    w = border_weights(label)
    row = w[30, :20]
    # class-0 pixel at column j is 20 - j pixels from class 1: d < 4 -> 8, 4 <= d < 16 -> 6,
    # 16 <= d < 64 -> 4 (the image frame is not a border)
    expected = [4.0 if 20 - j >= 16 else 6.0 if 20 - j >= 4 else 8.0 for j in range(20)]
    assert row.tolist() == expected
    assert (w[0] == 0).all()  # ignore
    assert (w[1, :] == 8.0).sum() > 0  # next to the ignore row counts as a border
    assert w[30, 20:].tolist() == expected[::-1]


def test_border_focal_loss_hand_value_and_detached_modulation():
    logits = pixels([2.0, 0.0], [0.5, 1.5], [0.0, 0.0]).requires_grad_(True)
    labels = labels_of(0, 0, 255)
    weights = torch.tensor([[[8.0, 2.0, 5.0]]])
    loss = BorderFocalLoss(gamma=0.5)(logits, labels, weights)
    terms = []
    for w, z in ((8.0, [2.0, 0.0]), (2.0, [0.5, 1.5])):
        log_q = log_softmax(z)[0]
        terms.append(w * math.exp(0.5 * (1 - math.exp(log_q))) * -log_q)
    assert loss.item() == pytest.approx(sum(terms) / 2, rel=1e-6)
    loss.backward()
    # d/dz of w m (-log q) with m held constant is w m (softmax(z) - onehot) / #valid
    z = torch.tensor([2.0, 0.0])
    q = z.softmax(0)
    m = math.exp(0.5 * (1 - q[0].item()))
    expected = 8.0 * m * (q - torch.tensor([1.0, 0.0])) / 2
    assert torch.allclose(logits.grad[0, :, 0, 0], expected, atol=1e-6)
    assert torch.equal(logits.grad[0, :, 0, 2], torch.zeros(2))  # ignore pixel: no gradient


def test_border_loss_computes_weights_from_labels():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 12, 16)
    labels = torch.randint(0, 3, (2, 12, 16))
    labels[:, :2] = 255
    loss = BorderFocalLoss()
    w = loss.weights_for(labels)
    assert torch.equal(w[labels == 255], torch.zeros(int((labels == 255).sum())))
    assert loss(logits, labels).item() == pytest.approx(loss(logits, labels, w).item())


def test_pixel_kl_hand_value_temperature_and_ignore():
    s = pixels([1.0, 0.0], [0.0, 0.0], [5.0, -5.0])
    t = pixels([0.0, 1.0], [2.0, 0.0], [-50.0, 50.0])
    labels = labels_of(0, 1, 255)
    temp = 2.0

    def kl(zt, zs):
        lt, ls = log_softmax([x / temp for x in zt]), log_softmax([x / temp for x in zs])
        return sum(math.exp(a) * (a - b) for a, b in zip(lt, ls, strict=True))

    expected = temp ** 2 * (kl([0, 1], [1, 0]) + kl([2, 0], [0, 0])) / 2
    assert PixelKLDivLoss(temp)(s, t, labels).item() == pytest.approx(expected, rel=1e-5)
    assert PixelKLDivLoss(temp)(t, t, labels).item() == pytest.approx(0.0, abs=1e-7)
    # without labels every pixel counts
    assert PixelKLDivLoss(temp)(s, t).item() > PixelKLDivLoss(temp)(s, t, labels).item()


def test_cwd_hand_value_identities():
    # N = 1, C = 2, 2 positions
    s = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])
    t = torch.tensor([[[[0.0, 2.0]], [[3.0, 0.0]]]])
    tau = 2.0
    expected = 0.0
    for c in range(2):
        lt = log_softmax([v / tau for v in t[0, c, 0].tolist()])
        ls = log_softmax([v / tau for v in s[0, c, 0].tolist()])
        expected += sum(math.exp(a) * (a - b) for a, b in zip(lt, ls, strict=True))
    expected *= tau ** 2 / (1 * 2)
    cwd = ChannelWiseDivergence(tau)
    assert cwd(s, t).item() == pytest.approx(expected, rel=1e-5)
    assert cwd(t, t).item() == pytest.approx(0.0, abs=1e-7)
    # a constant added to a channel leaves its spatial distribution unchanged
    assert cwd(t + torch.tensor([3.0, -1.0])[None, :, None, None], t).item() == \
        pytest.approx(0.0, abs=1e-6)
    assert cwd(s, t).item() > 0


def test_l2_and_lad():
    torch.manual_seed(0)
    t = torch.randn(2, 4, 6, 6)
    s = torch.randn(2, 4, 3, 3)
    up = torch.nn.functional.interpolate(s, size=(6, 6), mode='bilinear', align_corners=False)
    assert L2FeatureLoss()(s, t).item() == pytest.approx(((up - t) ** 2).mean().item(), rel=1e-5)
    # LAD ignores the magnitude and offset of each sample's feature
    assert LADLoss()(3.0 * t + 1.0, t).item() == pytest.approx(0.0, abs=1e-6)
    assert L2FeatureLoss()(3.0 * t + 1.0, t).item() > 1.0
    assert LADLoss()(s, t).item() > 0.1
    with pytest.raises(ValueError, match='channels'):
        L2FeatureLoss()(torch.randn(1, 3, 2, 2), t)


def test_adapter_maps_channels_and_size():
    a = Adapter(8, 16, batch_norm=True)
    out = a(torch.randn(2, 8, 5, 7), size=(10, 14))
    assert out.shape == (2, 16, 10, 14)
    with pytest.raises(ValueError, match='equal channels'):
        Adapter(8, 16, project=False)


def test_pidnet_edges_and_boundary_losses():
    label = np.zeros((32, 32), np.uint8)
    label[:, 16:] = 13
    edges = edge_target(label)
    assert edges[16, 14:18].all()  # the class change is an edge (dilated)
    assert not edges[16, :10].any() and not edges[:3].any()  # far away; the frame
    lab = torch.from_numpy(label.astype(np.int64))[None]
    e = torch.from_numpy(edges)[None]
    boundary = torch.zeros(1, 1, 32, 32)  # sigmoid 0.5 everywhere: BCE = log 2 per pixel
    pos, n = float(e.sum()), 32 * 32
    weight_sum = pos * (n - pos) / n + (n - pos) * pos / n
    expected = 20.0 * math.log(2) * weight_sum / n
    assert BoundaryBCELoss()(boundary, lab, e).item() == pytest.approx(expected, rel=1e-5)
    # boundary-aware CE: nothing is on a predicted boundary (sigmoid 0.5 <= 0.8) -> 0
    logits = torch.randn(1, 19, 32, 32)
    assert BoundaryAwareCELoss(min_kept=10)(logits, boundary, lab).item() == 0.0
    sure = torch.full((1, 1, 32, 32), 10.0)
    assert BoundaryAwareCELoss(min_kept=10)(logits, sure, lab).item() > 0
    terms = PidnetLoss(ohem_min_kept=100)(logits, {'p_logits': logits, 'boundary': sure}, lab)
    assert set(terms) == {'aux_ce', 'ohem', 'boundary_bce', 'boundary_ce'}
    assert all(math.isfinite(v.item()) and v.item() > 0 for v in terms.values())
    with pytest.raises(KeyError, match='boundary'):
        PidnetLoss()(logits, {'p_logits': logits}, lab)
