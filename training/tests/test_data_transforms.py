"""Train/eval transforms: determinism under a seed, labels only ever nearest, normalisation.

The training data (`KeyedTrainDataset`) seeds each sample's augmentation with (seed, epoch, index)
and takes its settings from the recipe's `data` section.
"""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seg_kd_train.config import DataConfig
from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD
from seg_kd_train.data.transforms import EvalTransform, TrainTransform, denormalize, to_tensor
from seg_kd_train.train.train_data import KeyedTrainDataset


def _sample(index=0, h=60, w=80, seed=0):
    rng = np.random.default_rng(seed)
    # label: blocks of a few classes, so any interpolation would create new values in between
    blocks = rng.choice([0, 7, 13, 18], (h // 10, w // 10))
    lab = np.kron(blocks, np.ones((10, 10))).astype(np.uint8)
    lab[:5] = 255
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return {'image': img, 'label': lab, 'index': index, 'condition': 'fog', 'dataset': 'x'}


class _ToyDataset:
    """Untransformed samples, as a dataset gives them to `KeyedTrainDataset`."""

    def __init__(self, n=6):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return _sample(i, seed=i)


def apply(transform: TrainTransform, sample: dict, seed=0) -> dict:
    """`transform` on one sample, normalised to tensors as the training data does it."""
    image, label = transform.augment(sample['image'], sample['label'],
                                     np.random.default_rng(seed))
    image, label = to_tensor(image, label, transform.mean, transform.std)
    return {'image': image, 'label': label}


def keyed(seed=0, n=6, **data):
    return KeyedTrainDataset(_ToyDataset(n), DataConfig(crop_size=[32, 48], **data), seed)


def test_train_sample_types_shapes_and_fields():
    out = keyed(seed=1)[(0, 0)]
    assert out['image'].dtype == torch.float32 and out['image'].shape == (3, 32, 48)
    assert out['label'].dtype == torch.int64 and out['label'].shape == (32, 48)
    assert out['condition'] == 'fog'


def test_same_seed_index_epoch_gives_same_result_and_others_differ():
    a, b = keyed(seed=3)[(0, 5)], keyed(seed=3)[(0, 5)]
    assert torch.equal(a['image'], b['image']) and torch.equal(a['label'], b['label'])
    others = (keyed(seed=3)[(0, 4)], keyed(seed=3)[(1, 5)], keyed(seed=4)[(0, 5)])
    for o in others:
        assert not torch.equal(a['image'], o['image'])


def test_workers_do_not_change_the_augmentation_and_epochs_differ():
    ds = keyed(seed=0)
    keys = [[(epoch, i) for i in range(6)] for epoch in range(2)]

    def run(loader):
        return [(b['image'], b['label']) for b in loader]

    epochs = []
    for epoch_keys in keys:
        serial = DataLoader(ds, batch_size=2, sampler=epoch_keys, num_workers=0)
        workers = DataLoader(ds, batch_size=2, sampler=epoch_keys, num_workers=2)
        a, b = run(serial), run(workers)
        for (ia, la), (ib, lb) in zip(a, b, strict=True):
            assert torch.equal(ia, ib) and torch.equal(la, lb)
        epochs.append(a)
    assert not torch.equal(epochs[0][0][0], epochs[1][0][0])


def test_the_recipe_sets_flip_jitter_and_weather():
    sample = _sample(index=2, seed=2)
    plain = dict(scale_range=[1.0, 1.0], jitter_prob=0.0)
    flipped = KeyedTrainDataset(_ToyDataset(), DataConfig(crop_size=[60, 80], hflip_prob=1.0,
                                                          **plain), 0)[(0, 2)]
    assert (flipped['label'].numpy() == sample['label'][:, ::-1]).all()
    still = keyed(hflip_prob=0.0, **plain)
    assert still.transform.hflip_prob == 0.0 and still.transform.jitter_prob == 0.0
    jitter = keyed(jitter=[0.1, 0.2, 0.3, 0.05], jitter_prob=0.5, weather_prob=0.25,
                   weather_conditions=['fog', 'snow']).transform
    assert jitter.jitter == (0.1, 0.2, 0.3, 0.05) and jitter.jitter_prob == 0.5
    assert jitter.weather_prob == 0.25 and jitter.weather_conditions == ('fog', 'snow')
    fog = KeyedTrainDataset(_ToyDataset(), DataConfig(crop_size=[60, 80], weather_prob=1.0,
                                                      weather_conditions=['fog'], **plain), 0)
    clear = KeyedTrainDataset(_ToyDataset(), DataConfig(crop_size=[60, 80], **plain), 0)
    assert torch.equal(fog[(0, 1)]['label'], clear[(0, 1)]['label'])
    assert not torch.equal(fog[(0, 1)]['image'], clear[(0, 1)]['image'])


@pytest.mark.parametrize('seed', range(8))
def test_labels_are_never_interpolated(seed):
    sample = _sample(index=seed, seed=seed)
    allowed = set(np.unique(sample['label']).tolist()) | {255}
    out = apply(TrainTransform((70, 90), scale_range=(0.37, 2.3)), sample, seed)
    assert set(torch.unique(out['label']).tolist()) <= allowed


def test_crop_larger_than_image_is_padded_with_ignore_and_mean():
    sample = _sample(h=20, w=30)
    sample['label'][:] = 7
    t = TrainTransform((64, 64), scale_range=(1.0, 1.0), hflip_prob=0.0, jitter_prob=0.0)
    out = apply(t, sample)
    lab = out['label']
    assert (lab == 7).sum() == 20 * 30 and (lab == 255).sum() == 64 * 64 - 20 * 30
    pad = out['image'][:, lab == 255]
    assert pad.abs().max() < 0.02  # padded with the mean colour: ~0 after normalisation


def test_flip_and_normalisation_are_exact():
    sample = _sample()
    t = TrainTransform((60, 80), scale_range=(1.0, 1.0), hflip_prob=1.0, jitter_prob=0.0)
    out = apply(t, sample)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    expected = (sample['image'][:, ::-1] / 255.0 - mean) / std
    assert np.allclose(out['image'].numpy().transpose(1, 2, 0), expected, atol=1e-5)
    assert (out['label'].numpy() == sample['label'][:, ::-1]).all()
    assert (denormalize(out['image']) == sample['image'][:, ::-1]).all()


def test_weather_augmentation_keeps_labels():
    sample = _sample(index=1)
    plain = apply(TrainTransform((60, 80), scale_range=(1.0, 1.0), jitter_prob=0.0), sample, 2)
    weather = apply(TrainTransform((60, 80), scale_range=(1.0, 1.0), jitter_prob=0.0,
                                   weather_prob=1.0, weather_conditions=('fog',)), sample, 2)
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
