"""Every registered model: output shapes, finite values, declared taps, train/eval paths, sizes."""

import math

import pytest
import torch

from seg_kd_train.models import TEACHER, TapInfo, build_model, count_parameters, list_models

STUDENTS = [n for n in list_models() if n != TEACHER]
SIZES = [(64, 96), (100, 140)]  # neither divisible by 32
# parameters of the official implementations with 19 classes, inference mode (docs/thesis.md),
# and the thesis's ~206 M for its SwiftNet-ConvNeXt-L teacher
PUBLISHED_M = {'pidnet_s': 7.63, 'pidnet_m': 28.54, 'pidnet_l': 36.94,
               'swiftnet_ss_rn18': 11.80, 'swiftnet_pyr_rn18': 12.06, TEACHER: 206.0}


@pytest.fixture(scope='module')
def models():
    cache = {}

    def get(name):
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = build_model(name)
        return cache[name]
    return get


def check_taps(model, taps, n, h, w):
    assert {'features', 'context'} <= set(model.taps)
    assert set(taps) == set(model.taps)
    for tap, info in model.taps.items():
        assert isinstance(info, TapInfo)
        expected = (n, info.channels, math.ceil(h / info.stride), math.ceil(w / info.stride))
        assert tuple(taps[tap].shape) == expected, tap
        assert torch.isfinite(taps[tap]).all(), tap


@pytest.mark.parametrize('name', STUDENTS)
def test_eval_shapes_taps_and_heads(models, name):
    model = models(name).eval()
    for i, (h, w) in enumerate(SIZES):
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            out = model.forward_train(x)
            if i == 0:  # the inference path: the same logits, nothing else
                y = model(x)
                assert isinstance(y, torch.Tensor)
                torch.testing.assert_close(out['logits'], y)
        assert out['logits'].shape == (1, 19, h, w)
        assert torch.isfinite(out['logits']).all()
        check_taps(model, out['taps'], 1, h, w)
        if name.startswith('pidnet'):
            assert set(out['aux']) == {'p_logits', 'boundary'}
            assert out['aux']['p_logits'].shape == (1, 19, h, w)
            assert out['aux']['boundary'].shape == (1, 1, h, w)
        else:
            assert out['aux'] == {}


@pytest.mark.parametrize('name', STUDENTS)
def test_train_mode_updates_statistics_and_backpropagates(models, name):
    model = models(name).train()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    x = torch.randn(2, 3, 36, 52)
    with torch.no_grad():
        y = model(x)  # inference path in train mode: still logits only
    assert isinstance(y, torch.Tensor) and y.shape == (2, 19, 36, 52)
    before = bn.running_mean.clone()
    out = model.forward_train(x)
    loss = out['logits'].square().mean() + sum(a.square().mean() for a in out['aux'].values())
    model.zero_grad()
    loss.backward()
    assert not torch.equal(bn.running_mean, before)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    if name.startswith('pidnet'):  # the auxiliary heads learn only through forward_train
        assert all(p.grad is not None for p in model.aux_heads.parameters())
    model.eval()


def test_eval_is_deterministic_and_batch_independent(models):
    model = models('swiftnet_pyr_rn18').eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1:], model(x[1:]), rtol=1e-4, atol=1e-4)


def test_num_classes_and_backbone_kwargs():
    model = build_model('swiftnet_ss_rn18', num_classes=7, backbone='resnet18', num_features=32)
    assert model.taps['features'] == TapInfo(32, 4)
    assert model.taps['context'] == TapInfo(32, 32)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 7, 64, 64)
    tiny = build_model('swiftnet_pyr_mnv4', backbone='mobilenetv4_conv_small', num_features=16)
    assert tiny.taps['stage4'] == TapInfo(960, 32)  # read from timm's feature_info


@pytest.fixture(scope='module')
def teacher():
    torch.manual_seed(0)
    return build_model(TEACHER).eval()


def test_teacher_forward_and_taps(teacher):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = teacher.forward_train(x)
    assert out['logits'].shape == (1, 19, 64, 64) and torch.isfinite(out['logits']).all()
    check_taps(teacher, out['taps'], 1, 64, 64)
    assert teacher.taps['stage4'] == TapInfo(1536, 32)


@pytest.mark.parametrize('name', sorted(PUBLISHED_M))
def test_parameter_counts_match_published(models, teacher, name):
    model = teacher if name == TEACHER else models(name)
    count = count_parameters(model) / 1e6
    assert abs(count - PUBLISHED_M[name]) / PUBLISHED_M[name] < 0.02, f'{name}: {count:.2f} M'


def test_pidnet_aux_heads_are_not_inference_parameters(models):
    model = models('pidnet_s')
    assert count_parameters(model, inference=False) > count_parameters(model)


def _timm_reference(model):
    import timm

    for m in model.modules():  # timm zero-initialises the last BN of each block: undo that
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    reference = timm.create_model('resnet18', features_only=True).eval()
    return reference


def test_single_scale_skips_are_after_the_relu_as_in_the_authors_code():
    model = build_model('swiftnet_ss_rn18').eval()
    reference = _timm_reference(model)
    reference.load_state_dict(model.backbone.body.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        taps = model.forward_train(x)['taps']
        post = reference(x)[1:]  # timm's stage outputs, after the ReLU
    for i, want in enumerate(post):
        torch.testing.assert_close(taps[f'stage{i + 1}'], want)


def test_pyramid_skips_are_before_the_relu():
    model = build_model('swiftnet_pyr_rn18').eval()
    reference = _timm_reference(model)
    # level 0 of the per-scale norms, the shared shortcut norms as they are
    state = {k.replace('.copies.0.', '.'): v for k, v in model.backbone.body.state_dict().items()
             if '.copies.' not in k or '.copies.0.' in k}
    reference.load_state_dict(state)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        taps = model.forward_train(x)['taps']
        post = reference(x)[1:]
    for i, want in enumerate(post):
        got = taps[f'stage{i + 1}']
        assert got.min() < 0  # the sums before the ReLU
        torch.testing.assert_close(torch.relu(got), want)


def test_pyramid_shares_the_shortcut_norms_across_scales():
    body = build_model('swiftnet_pyr_rn18').backbone.body
    assert isinstance(body.layer2[0].downsample[1], torch.nn.BatchNorm2d)
    assert len(body.layer2[0].bn1.copies) == 3 and len(body.bn1.copies) == 3
