"""Train/eval transforms: determinism under a seed, labels only ever nearest, normalisation."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD
from seg_kd_train.data.transforms import EvalTransform, TrainTransform, denormalize


def _sample(index=0, h=60, w=80, seed=0):
    rng = np.random.default_rng(seed)
    # label: blocks of a few classes, so any interpolation would create new values in between
    blocks = rng.choice([0, 7, 13, 18], (h // 10, w // 10))
    lab = np.kron(blocks, np.ones((10, 10))).astype(np.uint8)
    lab[:5] = 255
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return {'image': img, 'label': lab, 'index': index, 'condition': 'fog', 'dataset': 'x'}


class _ToyDataset:
    def __init__(self, transform, n=6):
        self.transform, self.n = transform, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.transform(_sample(i, seed=i))


def test_train_transform_output_types_and_shapes():
    out = TrainTransform((32, 48), seed=1)(_sample())
    assert out['image'].dtype == torch.float32 and out['image'].shape == (3, 32, 48)
    assert out['label'].dtype == torch.int64 and out['label'].shape == (32, 48)
    assert out['condition'] == 'fog' and out['dataset'] == 'x'


def test_same_seed_index_epoch_gives_same_result_and_others_differ():
    t1, t2 = TrainTransform((32, 48), seed=3), TrainTransform((32, 48), seed=3)
    a, b = t1(_sample(index=5)), t2(_sample(index=5))
    assert torch.equal(a['image'], b['image']) and torch.equal(a['label'], b['label'])
    other_index = t1(_sample(index=6))
    t2.set_epoch(1)
    other_epoch = t2(_sample(index=5))
    other_seed = TrainTransform((32, 48), seed=4)(_sample(index=5))
    for o in (other_index, other_epoch, other_seed):
        assert not torch.equal(a['image'], o['image'])


def test_workers_do_not_change_the_augmentation_and_see_the_epoch():
    transform = TrainTransform((24, 32), seed=0)
    ds = _ToyDataset(transform)

    def run(loader):
        return [(b['image'], b['label']) for b in loader]

    serial = DataLoader(ds, batch_size=2, num_workers=0)
    workers = DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=True)
    epochs = []
    for epoch in range(2):
        transform.set_epoch(epoch)  # persistent workers must see it
        a, b = run(serial), run(workers)
        for (ia, la), (ib, lb) in zip(a, b, strict=True):
            assert torch.equal(ia, ib) and torch.equal(la, lb)
        epochs.append(a)
    assert not torch.equal(epochs[0][0][0], epochs[1][0][0])


@pytest.mark.parametrize('seed', range(8))
def test_labels_are_never_interpolated(seed):
    sample = _sample(index=seed, seed=seed)
    allowed = set(np.unique(sample['label']).tolist()) | {255}
    out = TrainTransform((70, 90), scale_range=(0.37, 2.3), seed=seed)(sample)
    assert set(torch.unique(out['label']).tolist()) <= allowed


def test_crop_larger_than_image_is_padded_with_ignore_and_mean():
    sample = _sample(h=20, w=30)
    sample['label'][:] = 7
    t = TrainTransform((64, 64), scale_range=(1.0, 1.0), hflip_prob=0.0, jitter_prob=0.0)
    out = t(sample)
    lab = out['label']
    assert (lab == 7).sum() == 20 * 30 and (lab == 255).sum() == 64 * 64 - 20 * 30
    pad = out['image'][:, lab == 255]
    assert pad.abs().max() < 0.02  # padded with the mean colour: ~0 after normalisation


def test_flip_and_normalisation_are_exact():
    sample = _sample()
    t = TrainTransform((60, 80), scale_range=(1.0, 1.0), hflip_prob=1.0, jitter_prob=0.0)
    out = t(sample)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    expected = (sample['image'][:, ::-1] / 255.0 - mean) / std
    assert np.allclose(out['image'].numpy().transpose(1, 2, 0), expected, atol=1e-5)
    assert (out['label'].numpy() == sample['label'][:, ::-1]).all()
    assert (denormalize(out['image']) == sample['image'][:, ::-1]).all()


def test_weather_augmentation_keeps_labels():
    sample = _sample(index=1)
    plain = TrainTransform((60, 80), scale_range=(1.0, 1.0), jitter_prob=0.0, seed=2)(sample)
    weather = TrainTransform((60, 80), scale_range=(1.0, 1.0), jitter_prob=0.0, seed=2,
                             weather_prob=1.0, weather_conditions=('fog',))(sample)
    assert torch.equal(plain['label'], weather['label'])
    assert not torch.equal(plain['image'], weather['image'])


def test_eval_transform_resizes_label_nearest_and_is_deterministic():
    sample = _sample()
    out = EvalTransform((30, 40))(sample)
    assert out['image'].shape == (3, 30, 40) and out['label'].shape == (30, 40)
    assert set(torch.unique(out['label']).tolist()) <= set(np.unique(sample['label']).tolist())
    assert torch.equal(EvalTransform()(sample)['label'], torch.from_numpy(
        sample['label'].astype(np.int64)))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match='crop_size'):
        TrainTransform((0, 10))
    with pytest.raises(ValueError, match='scale_range'):
        TrainTransform((10, 10), scale_range=(2.0, 1.0))
