"""`seg-kd import-checkpoint`: the authors' key layouts in, this project's weights files out.

The authors' files are built by `authors_checkpoints` from a description written out from their
code (random weights, non-trivial BatchNorm statistics). That our models then compute what the
authors' code computes was checked against their own classes (README, "Use published weights");
here: the mapping, the counts, the auxiliary heads, the metadata and the one-line refusals.
"""

import argparse
import json

import authors_checkpoints as authors
import pytest
from safetensors import safe_open
import torch

from seg_kd_train.cli import main
from seg_kd_train.data.cityscapes_labels import CITYSCAPES_CLASSES, IMAGENET_MEAN, IMAGENET_STD
from seg_kd_train.models import build_model, count_parameters
from seg_kd_train.models.weights import load_model_weights, read_weights_metadata


def _import(tmp_path, state, name='ckpt.pt', *extra):
    src, out = tmp_path / name, tmp_path / 'out.safetensors'
    torch.save(state, src)
    rc = main(['import-checkpoint', '--in', str(src), '--out', str(out), *extra])
    return rc, out


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    return err


@pytest.mark.parametrize('layout, name', [(authors.swiftnet_single_scale, 'swiftnet_ss_rn18'),
                                          (authors.swiftnet_pyramid, 'swiftnet_pyr_rn18')])
def test_swiftnet_imports_every_tensor_with_its_normalisation(tmp_path, capsys, layout, name):
    theirs = layout()
    rc, out = _import(tmp_path, theirs, 'model_best.pt')
    assert rc == 0 and name in capsys.readouterr().out
    model = load_model_weights(out)
    assert count_parameters(model) == authors.parameter_count(theirs)
    assert count_parameters(model) == authors.AUTHORS_PARAMETERS[name]
    ours = model.state_dict()
    assert len(ours) == len(theirs) - 2  # all but img_mean / img_std, now build arguments
    if name == 'swiftnet_ss_rn18':
        pairs = {'backbone.spp.spp.spp1.norm.running_var': 'spp.levels.1.norm.running_var',
                 'backbone.upsample.0.bottleneck.conv.weight': 'upsample.0.bottleneck.conv.weight',
                 'backbone.layer4.1.bn2.running_mean': 'backbone.body.layer4.1.bn2.running_mean'}
    else:  # their bottlenecks run from the deepest stage, per-scale norms are list entries
        pairs = {'backbone.upsample_bottlenecks.0.weight': 'bottlenecks.3.weight',
                 'backbone.upsample_blends.4.blend_conv.norm.bias': 'blends.4.blend.norm.bias',
                 'backbone.layer3.1.bn1.2.running_var':
                     'backbone.body.layer3.1.bn1.copies.2.running_var',
                 'backbone.layer2.0.downsample.1.running_mean':
                     'backbone.body.layer2.0.downsample.1.running_mean'}
    for their_key, our_key in {**pairs, 'logits.conv.bias': 'logits.conv.bias'}.items():
        assert torch.equal(ours[our_key], theirs[their_key]), their_key
    meta = read_weights_metadata(out)
    assert meta['model_name'] == name and meta['contents'] == 'full'
    assert meta['classes'] == list(CITYSCAPES_CLASSES)
    assert meta['source'] == 'model_best.pt (github.com/orsic/swiftnet, trained model)'
    assert meta['model_kwargs'] == {'pixel_mean': authors.SWIFTNET_MEAN,
                                    'pixel_std': authors.SWIFTNET_STD}
    norm = json.loads(meta['normalisation'])
    assert norm['mean'] == pytest.approx(IMAGENET_MEAN) and norm['std'] == pytest.approx(
        IMAGENET_STD)
    # an ImageNet-normalised image reaches the weights as the authors normalised it
    pixels = torch.rand(1, 3, 8, 8) * 255
    x = (pixels / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD).view(1, 3, 1, 1)
    want = (pixels - torch.tensor(authors.SWIFTNET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        authors.SWIFTNET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(model.renorm(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('variant', ['s', 'm', 'l'])
def test_pidnet_cityscapes_imports_with_its_auxiliary_heads(tmp_path, capsys, variant):
    theirs = authors.pidnet_cityscapes(variant)
    if variant == 'm':  # saved from DataParallel too: module.model.*
        theirs = {f'module.{k}': v for k, v in theirs.items()}
    rc, out = _import(tmp_path, theirs, f'PIDNet_{variant.upper()}_Cityscapes_val.pt')
    printed = capsys.readouterr().out
    assert rc == 0 and f'pidnet_{variant}' in printed and 'sem_loss.criterion.weight' in printed
    model = load_model_weights(out)
    plain = {k.split('model.', 1)[1]: v for k, v in theirs.items() if 'model.' in k}
    assert count_parameters(model, inference=False) == authors.parameter_count(plain)
    assert (count_parameters(model), count_parameters(model, inference=False)) == \
        authors.AUTHORS_PARAMETERS[f'pidnet_{variant}']
    ours = model.state_dict()
    assert len(ours) == len(plain)
    for key, value in plain.items():
        key = key.replace('seghead_p.', 'aux_heads.p_logits.').replace(
            'seghead_d.', 'aux_heads.boundary.')
        assert torch.equal(ours[key], value), key
    assert model.align_corners  # as their evaluation upsamples
    meta = read_weights_metadata(out)
    assert meta['contents'] == 'full' and meta['model_kwargs'] == {'align_corners': True}
    assert 'XuJiacong/PIDNet' in meta['source']
    with torch.no_grad():
        aux = model.eval().forward_train(torch.randn(1, 3, 64, 96))['aux']
    assert aux['boundary'].shape == (1, 1, 64, 96)


def test_pidnet_imagenet_backbone_starts_training_only(tmp_path, capsys):
    theirs = authors.pidnet_imagenet('s')
    rc, out = _import(tmp_path, theirs, 'PIDNet_S_ImageNet.pth.tar')
    printed = capsys.readouterr().out
    assert rc == 0 and 'backbone only' in printed and 'linear.weight' in printed
    meta = read_weights_metadata(out)
    assert meta['contents'] == 'backbone' and meta['model_name'] == 'pidnet_s'
    with safe_open(str(out), framework='pt') as f:
        keys = set(f.keys())
    assert keys == {k for k in theirs['state_dict'] if not k.startswith(('down', 'last', 'lin'))}
    model = build_model('pidnet_s', pretrained=out)  # what model.pretrained does
    assert torch.equal(model.layer5[1].bn3.running_var,
                       theirs['state_dict']['layer5.1.bn3.running_var'])
    assert main(['export', '--weights', str(out), '--out', str(tmp_path / 'm.onnx')]) == 2
    assert 'only backbone weights' in _error(capsys)


def _namespace_pickle(tmp_path):
    path = tmp_path / 'pickled.pt'
    torch.save({'state_dict': {}, 'args': argparse.Namespace(lr=0.01)}, path)
    return path


@pytest.mark.parametrize('case, message', [
    ('pickle', 'refused, it needs more than weights-only unpickling'),
    ('unknown', '2 keys of the checkpoint not in swiftnet_ss_rn18 (19 classes): '
                'backbone.extra.weight, backbone.spp.spp.spp3.conv.weight'),
    ('shape', 'tensor with other shapes than in swiftnet_ss_rn18'),
    ('missing', 'lacks 1 tensor of swiftnet_ss_rn18 (19 classes): logits.conv.bias'),
    ('model', 'holds swiftnet_ss_rn18 weights, not swiftnet_pyr_rn18'),
    ('source', 'is a swiftnet checkpoint, not pidnet'),
    ('foreign', "not a checkpoint of PIDNet's or SwiftNet's authors (keys: fc.weight)"),
    ('classes', 'classifies 19 classes'),
])
def test_refusals_are_one_line(tmp_path, capsys, case, message):
    state = authors.swiftnet_single_scale()
    extra = []
    if case == 'pickle':
        src = _namespace_pickle(tmp_path)
        out = tmp_path / 'o.safetensors'
        assert main(['import-checkpoint', '--in', str(src), '--out', str(out)]) == 2
        assert message in _error(capsys) and not out.exists()
        return
    if case == 'unknown':
        state['backbone.extra.weight'] = torch.zeros(1)
        state['backbone.spp.spp.spp3.conv.weight'] = torch.zeros(1)
    elif case == 'shape':
        state['logits.conv.bias'] = torch.zeros(7)
    elif case == 'missing':
        del state['logits.conv.bias']
    elif case == 'model':
        extra = ['--model', 'swiftnet_pyr_rn18']
    elif case == 'source':
        extra = ['--source', 'pidnet']
    elif case == 'foreign':
        state = {'fc.weight': torch.zeros(2, 2)}
    elif case == 'classes':
        classes = tmp_path / 'classes.yaml'
        classes.write_text('classes:\n- {name: a, color: [0, 0, 0]}\n'
                           '- {name: b, color: [1, 1, 1]}\n')
        extra = ['--classes', str(classes)]
    rc, out = _import(tmp_path, state, 'model_best.pt', *extra)
    assert rc == 2 and message in _error(capsys) and not out.exists()
