"""Cityscapes label tables against the official cityscapesscripts table."""

from cityscapesscripts.helpers.labels import id2label, labels, trainId2label
import numpy as np
import pytest

from seg_kd_ros.postprocess import PaletteTable
from seg_kd_train.data import cityscapes_labels as cl


def test_nineteen_classes_in_trainid_order_with_official_names_and_colours():
    assert len(cl.CITYSCAPES_CLASSES) == 19 == cl.NUM_CLASSES
    for tid, (name, colour) in enumerate(zip(cl.CITYSCAPES_CLASSES, cl.CITYSCAPES_PALETTE,
                                             strict=True)):
        assert trainId2label[tid].name == name
        assert tuple(trainId2label[tid].color) == colour
    assert cl.CITYSCAPES_CLASSES[0] == 'road' and cl.CITYSCAPES_CLASSES[18] == 'bicycle'
    assert cl.TRAIN_IDS['road'] == 0 and cl.TRAIN_IDS['traffic light'] == 6
    assert cl.shipped_classes_file().parent.name == 'config'


def test_a_missing_classes_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(cl.seg_kd_ros, '__file__', str(tmp_path / 'pkg' / '__init__.py'))
    monkeypatch.setattr(cl.sys, 'prefix', str(tmp_path))
    monkeypatch.delenv('AMENT_PREFIX_PATH', raising=False)
    with pytest.raises(FileNotFoundError, match='cityscapes_classes.yaml is in none of'):
        cl.shipped_classes_file()


def test_label_id_lookup_matches_official_table_for_every_id():
    for lab in labels:
        if lab.id < 0:
            continue
        expected = lab.trainId if 0 <= lab.trainId < 255 else 255
        assert cl.LABEL_ID_TO_TRAIN_ID[lab.id] == expected, lab.name
    # ids the table does not know map to ignore
    unknown = [i for i in range(256) if i not in id2label]
    assert (cl.LABEL_ID_TO_TRAIN_ID[unknown] == 255).all()


def test_mapping_an_image_and_back():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 40, (30, 40)).astype(np.uint8)
    train = cl.label_ids_to_train_ids(ids)
    assert train.dtype == np.uint8 and train.shape == ids.shape
    for i in range(40):
        expected = id2label[i].trainId if i in id2label else 255
        expected = expected if 0 <= expected < 255 else 255
        assert (train[ids == i] == expected).all()
    back = cl.train_ids_to_label_ids(train)
    assert (cl.label_ids_to_train_ids(back) == train).all()
    assert (back[train == 255] == 0).all()  # ignore -> 'unlabeled'


def test_colorize_uses_palette_and_black_for_ignore():
    lab = np.array([[0, 13, 255]], np.uint8)
    rgb = PaletteTable(cl.CITYSCAPES_PALETTE).colorize(lab)
    assert rgb.shape == (1, 3, 3)
    assert tuple(rgb[0, 0]) == cl.CITYSCAPES_PALETTE[0]
    assert tuple(rgb[0, 1]) == cl.CITYSCAPES_PALETTE[13]
    assert tuple(rgb[0, 2]) == (0, 0, 0)


def test_imagenet_statistics():
    assert cl.IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert cl.IMAGENET_STD == (0.229, 0.224, 0.225)
