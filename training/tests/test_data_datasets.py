"""ACDC, Cityscapes and BDD100K readers on small fixture trees in the real on-disk layouts."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from seg_kd_train.data import (
    DATASETS,
    AcdcDataset,
    Bdd100kDataset,
    CityscapesDataset,
    ConcatSegDataset,
    DatasetLayoutError,
    DatasetReadError,
    build_dataset,
    concat_datasets,
)
from seg_kd_train.data.cityscapes_labels import label_ids_to_train_ids, train_ids_to_label_ids

H, W = 12, 16


def _rgb(seed):
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _train_ids(seed):
    lab = np.random.default_rng(seed + 1000).integers(0, 19, (H, W)).astype(np.uint8)
    lab[0, :3] = 255
    return lab


def _write(path: Path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), array)


def make_acdc(root: Path, conditions=('fog', 'night'), per_split=2, test=True):
    """ACDC tree; returns {(condition, split, i): (image, trainIds, invalid)}."""
    truth = {}
    for ci, cond in enumerate(conditions):
        for split in ('train', 'val') + (('test',) if test else ()):
            for i in range(per_split):
                seed = ci * 100 + i * 10 + len(split)
                seq = f'GOPR{i // 2:04d}'
                stem = f'{seq}_frame_{i:06d}'
                img, lab = _rgb(seed), _train_ids(seed)
                inv = (np.arange(W)[None, :] >= W - 3).repeat(H, 0).astype(np.uint8)
                _write(root / 'rgb_anon' / cond / split / seq / f'{stem}_rgb_anon.png', img)
                if split != 'test':
                    gt = root / 'gt' / cond / split / seq
                    _write(gt / f'{stem}_gt_labelTrainIds.png', lab)
                    _write(gt / f'{stem}_gt_labelIds.png', train_ids_to_label_ids(lab))
                    _write(gt / f'{stem}_gt_invIds.png', inv)
                truth[(cond, split, i)] = (img, lab, inv)
    return truth


def test_acdc_reads_conditions_splits_and_labels(tmp_path):
    truth = make_acdc(tmp_path)
    ds = AcdcDataset(tmp_path, 'train', conditions=('fog', 'night'))
    assert len(ds) == 4
    assert ds.conditions == ['fog', 'fog', 'night', 'night']
    s = ds[2]
    img, lab, _ = truth[('night', 'train', 0)]
    assert s['dataset'] == 'acdc' and s['condition'] == 'night'
    assert s['image'].dtype == np.uint8 and s['image'].shape == (H, W, 3)
    assert (s['image'] == img).all() and (s['label'] == lab).all()
    assert s['path'].endswith('GOPR0000_frame_000000_rgb_anon.png')
    only_fog = AcdcDataset(tmp_path, 'val', conditions=('fog',))
    assert len(only_fog) == 2 and set(only_fog.conditions) == {'fog'}


def test_acdc_label_ids_are_mapped_and_invalid_regions_ignored(tmp_path):
    truth = make_acdc(tmp_path, conditions=('rain',))
    by_train = AcdcDataset(tmp_path, 'val', conditions=('rain',))
    by_ids = AcdcDataset(tmp_path, 'val', conditions=('rain',), label_type='labelIds')
    for i in range(len(by_train)):
        assert (by_train[i]['label'] == by_ids[i]['label']).all()
    masked = AcdcDataset(tmp_path, 'val', conditions=('rain',), ignore_invalid=True)[1]
    _, lab, inv = truth[('rain', 'val', 1)]
    assert (masked['label'][inv == 1] == 255).all()
    assert (masked['label'][inv == 0] == lab[inv == 0]).all()


def test_acdc_test_split_has_no_labels(tmp_path):
    make_acdc(tmp_path, conditions=('snow',))
    ds = AcdcDataset(tmp_path, 'test', conditions=('snow',))
    assert len(ds) == 2 and (ds[0]['label'] == 255).all()


def test_acdc_official_archive_folders_are_found(tmp_path):
    make_acdc(tmp_path / 'unpacked', conditions=('fog',), test=False)
    (tmp_path / 'rgb_anon_trainvaltest').mkdir()
    (tmp_path / 'gt_trainval').mkdir()
    (tmp_path / 'unpacked' / 'rgb_anon').rename(tmp_path / 'rgb_anon_trainvaltest' / 'rgb_anon')
    (tmp_path / 'unpacked' / 'gt').rename(tmp_path / 'gt_trainval' / 'gt')
    assert len(AcdcDataset(tmp_path, 'train', conditions=('fog',))) == 2


def test_acdc_wrong_layout_shows_expected_and_found(tmp_path):
    # images directly under the condition folder: no split/sequence level
    _write(tmp_path / 'fog' / 'x_rgb_anon.png', _rgb(0))
    with pytest.raises(DatasetLayoutError) as err:
        AcdcDataset(tmp_path, 'train', conditions=('fog',))
    msg = str(err.value)
    assert 'rgb_anon/<condition>/<split>/<sequence>' in msg and 'fog/' in msg


def test_acdc_missing_condition_or_label_is_named(tmp_path):
    make_acdc(tmp_path, conditions=('fog',), test=False)
    with pytest.raises(DatasetLayoutError, match="condition 'night'"):
        AcdcDataset(tmp_path, 'train', conditions=('fog', 'night'))
    missing = next((tmp_path / 'gt' / 'fog' / 'val').glob('*/*_gt_labelTrainIds.png'))
    missing.unlink()
    with pytest.raises(DatasetLayoutError, match=missing.name):
        AcdcDataset(tmp_path, 'val', conditions=('fog',))
    with pytest.raises(ValueError, match='unknown split'):
        AcdcDataset(tmp_path, 'training')


def test_corrupt_png_is_named_when_read(tmp_path):
    make_acdc(tmp_path, conditions=('fog',), test=False)
    ds = AcdcDataset(tmp_path, 'train', conditions=('fog',))
    bad = ds.records[1].label
    bad.write_bytes(b'\x89PNG\r\n\x1a\n this is not a png')
    assert ds[0]['label'].shape == (H, W)
    with pytest.raises(DatasetReadError, match=bad.name):
        ds[1]
    img = ds.records[0].image
    img.write_bytes(b'')
    with pytest.raises(DatasetReadError, match=img.name):
        ds[0]


def test_label_of_wrong_size_is_named(tmp_path):
    make_acdc(tmp_path, conditions=('fog',), test=False)
    ds = AcdcDataset(tmp_path, 'train', conditions=('fog',))
    _write(ds.records[0].label, np.zeros((H + 1, W), np.uint8))
    with pytest.raises(DatasetReadError, match='but image'):
        ds[0]


def make_cityscapes(root: Path):
    truth = []
    for split in ('train', 'val'):
        for c, city in enumerate(('aachen', 'bochum')):
            seed = c + 7 * len(split)
            stem = f'{city}_000000_0000{c}9'
            ids = np.random.default_rng(seed).integers(0, 34, (H, W)).astype(np.uint8)
            _write(root / 'leftImg8bit' / split / city / f'{stem}_leftImg8bit.png', _rgb(seed))
            _write(root / 'gtFine' / split / city / f'{stem}_gtFine_labelIds.png', ids)
            truth.append((split, city, ids))
    return truth


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    truth = make_cityscapes(tmp_path)
    ds = CityscapesDataset(tmp_path, 'val')
    assert len(ds) == 2
    s = ds[1]
    ids = [t[2] for t in truth if t[0] == 'val' and t[1] == 'bochum'][0]
    assert s['dataset'] == 'cityscapes' and s['condition'] == 'clear'
    assert (s['label'] == label_ids_to_train_ids(ids)).all()
    assert s['label'][ids == 7].tolist() == [0] * int((ids == 7).sum())  # road
    assert (s['label'][ids == 4] == 255).all()  # static -> ignore


def test_cityscapes_wrong_layout(tmp_path):
    make_cityscapes(tmp_path)
    (tmp_path / 'gtFine').rename(tmp_path / 'gtCoarse')
    with pytest.raises(DatasetLayoutError, match='gtFine/<split>/<city>'):
        CityscapesDataset(tmp_path, 'train')
    with pytest.raises(DatasetLayoutError, match='does not exist'):
        CityscapesDataset(tmp_path / 'nowhere', 'train')


def make_bdd(root: Path):
    base = root / 'bdd100k'
    truth = {}
    for split in ('train', 'val'):
        for i in range(2):
            name = f'{split[0]}{i:03d}abc-123'
            img, lab = _rgb(i + len(split)), _train_ids(i + len(split))
            path = base / 'images' / '10k' / split / f'{name}.jpg'
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            _write(base / 'labels' / 'sem_seg' / 'masks' / split / f'{name}.png', lab)
            truth[(split, i)] = lab
    return truth


def test_bdd100k_reads_from_root_or_parent(tmp_path):
    truth = make_bdd(tmp_path)
    for root in (tmp_path, tmp_path / 'bdd100k'):
        ds = Bdd100kDataset(root, 'train')
        assert len(ds) == 2
        s = ds[1]
        assert s['dataset'] == 'bdd100k' and s['condition'] == 'mixed'
        assert (s['label'] == truth[('train', 1)]).all()
        assert s['image'].shape == (H, W, 3)


def test_bdd100k_missing_mask_and_wrong_layout(tmp_path):
    make_bdd(tmp_path)
    mask = tmp_path / 'bdd100k' / 'labels' / 'sem_seg' / 'masks' / 'val' / 'v001abc-123.png'
    mask.unlink()
    with pytest.raises(DatasetLayoutError, match='v001abc-123.png'):
        Bdd100kDataset(tmp_path, 'val')
    with pytest.raises(DatasetLayoutError, match='images/10k/<split>'):
        Bdd100kDataset(tmp_path / 'bdd100k' / 'images', 'train')


def test_concat_keeps_origin_and_global_index(tmp_path):
    make_acdc(tmp_path / 'acdc', conditions=('fog',), test=False)
    make_cityscapes(tmp_path / 'cs')
    make_bdd(tmp_path / 'bdd')
    parts = [AcdcDataset(tmp_path / 'acdc', 'train', ('fog',)),
             CityscapesDataset(tmp_path / 'cs', 'train'),
             Bdd100kDataset(tmp_path / 'bdd', 'train')]
    cat = ConcatSegDataset(parts)
    assert len(cat) == 6
    assert [cat[i]['dataset'] for i in range(6)] == ['acdc'] * 2 + ['cityscapes'] * 2 + \
        ['bdd100k'] * 2
    assert cat.conditions == ['fog', 'fog', 'clear', 'clear', 'mixed', 'mixed']
    assert cat[3]['index'] == 3 and cat[-1]['index'] == 5
    assert (cat[4]['label'] == parts[2][0]['label']).all()
    with pytest.raises(IndexError):
        cat[6]


def test_the_factory_opens_each_layout_by_name(tmp_path):
    make_acdc(tmp_path / 'acdc', conditions=('fog', 'night', 'rain', 'snow'), test=False)
    make_cityscapes(tmp_path / 'cs')
    make_bdd(tmp_path / 'bdd')
    assert DATASETS == ('acdc', 'cityscapes', 'bdd100k')
    acdc = build_dataset('acdc', tmp_path / 'acdc', 'train')
    assert isinstance(acdc, AcdcDataset)  # all four conditions by default
    assert set(acdc.conditions) == {'fog', 'night', 'rain', 'snow'}
    fog = build_dataset('acdc', tmp_path / 'acdc', 'val', ['fog'], transform=lambda s: 'seen')
    assert set(fog.conditions) == {'fog'} and fog[0] == 'seen'
    assert isinstance(build_dataset('cityscapes', tmp_path / 'cs', 'train'), CityscapesDataset)
    assert isinstance(build_dataset('bdd100k', tmp_path / 'bdd', 'train'), Bdd100kDataset)
    with pytest.raises(ValueError, match='apply to acdc only; cityscapes has none'):
        build_dataset('cityscapes', tmp_path / 'cs', 'train', ['fog'])
    with pytest.raises(ValueError, match="one of acdc, cityscapes, bdd100k, got 'kitti'"):
        build_dataset('kitti', tmp_path, 'train')
    with pytest.raises(DatasetLayoutError):
        build_dataset('bdd100k', tmp_path / 'cs', 'train')
    cat = concat_datasets([acdc, build_dataset('bdd100k', tmp_path / 'bdd', 'train')])
    assert len(cat) == len(acdc) + 2 and cat[len(acdc)]['dataset'] == 'bdd100k'
    assert concat_datasets([acdc]) is acdc


def test_a_recipe_appends_extra_training_data(tmp_path):
    from seg_kd_train.config import recipe_from_dict
    from seg_kd_train.train.train_data import training_set, validation_set

    make_acdc(tmp_path / 'acdc', conditions=('fog', 'rain'), test=False)
    make_cityscapes(tmp_path / 'cs')
    make_bdd(tmp_path / 'bdd')
    recipe = recipe_from_dict({'name': 'x', 'model': {'name': 'swiftnet_ss_rn18'}, 'data': {
        'root': str(tmp_path / 'acdc'), 'conditions': ['fog', 'rain'],
        'extra_train': [{'dataset': 'cityscapes', 'root': str(tmp_path / 'cs')},
                        {'dataset': 'bdd100k', 'root': str(tmp_path / 'bdd')}]}})
    train = training_set(recipe.data)
    assert [train[i]['dataset'] for i in range(len(train))] == ['acdc'] * 4 + \
        ['cityscapes'] * 2 + ['bdd100k'] * 2
    val = validation_set(recipe.data)  # the recipe's own dataset only
    assert isinstance(val, AcdcDataset) and set(val.conditions) == {'fog', 'rain'}
