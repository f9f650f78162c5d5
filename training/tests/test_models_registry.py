"""The registry, pretrained and local weights, weights files."""

from pathlib import Path
import time

import pytest
from safetensors.torch import save_file
import timm
import torch

from seg_kd_train.errors import SegKdError
import seg_kd_train.models as models_pkg
from seg_kd_train.models import backbones, build_model, list_models
from seg_kd_train.models.weights import load_model_weights, save_model_weights, save_state_dict

EXPECTED = {'swiftnet_ss_rn18', 'swiftnet_ss_lite_rn18', 'swiftnet_pyr_rn18', 'swiftnet_ss_mnv4',
            'swiftnet_pyr_mnv4', 'swiftnet_ss_convnext_l', 'pidnet_s', 'pidnet_m', 'pidnet_l'}


def test_list_models_has_every_contract_name():
    assert EXPECTED <= set(list_models())
    assert list_models() == sorted(list_models())


def test_unknown_name_lists_known_ones():
    with pytest.raises(KeyError) as err:
        build_model('swiftnet_rn99')
    assert 'swiftnet_rn99' in str(err.value) and 'pidnet_s' in str(err.value)


def test_duplicate_registration_is_an_error():
    with pytest.raises(ValueError, match='pidnet_s'):
        models_pkg._register('pidnet_s', lambda **kw: None)
    assert 'pidnet_s' in list_models()


def test_bad_keyword_names_the_model():
    with pytest.raises(TypeError, match='pidnet_s.*backbone'):
        build_model('pidnet_s', backbone='resnet18')
    with pytest.raises(ValueError, match='num_classes'):
        build_model('pidnet_s', num_classes=0)
    with pytest.raises(SegKdError, match='no_such_net'):
        build_model('swiftnet_ss_rn18', backbone='no_such_net')


def _timm_weights(tmp_path: Path, name: str) -> tuple[Path, dict]:
    torch.manual_seed(1)
    state = {k: v.contiguous() for k, v in timm.create_model(name).state_dict().items()}
    state = {k: v + torch.rand_like(v) if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path / f'{name}.safetensors'
    save_file(state, str(path))
    return path, state


def test_local_backbone_weights_load_offline(tmp_path):
    path, state = _timm_weights(tmp_path, 'resnet18')
    model = build_model('swiftnet_ss_rn18', pretrained=str(path))
    torch.testing.assert_close(model.backbone.body.conv1.weight, state['conv1.weight'])
    torch.testing.assert_close(model.backbone.body.layer4[1].bn2.running_var,
                               state['layer4.1.bn2.running_var'])
    pyr = build_model('swiftnet_pyr_rn18', pretrained=path)
    for copy in pyr.backbone.body.bn1.copies:  # every pyramid level starts from the same weights
        torch.testing.assert_close(copy.weight, state['bn1.weight'])


def test_bad_weight_paths_are_named(tmp_path):
    (tmp_path / 'w.pth').write_bytes(b'not safetensors')
    with pytest.raises(SegKdError, match='safetensors'):
        build_model('swiftnet_ss_rn18', pretrained=str(tmp_path / 'w.pth'))
    with pytest.raises(SegKdError, match='missing.safetensors not found.*orsic/swiftnet'):
        build_model('swiftnet_ss_rn18', pretrained=str(tmp_path / 'missing.safetensors'))
    with pytest.raises(SegKdError, match='PIDNet_S_ImageNet.pth.tar.*import-checkpoint'):
        build_model('pidnet_s', pretrained='imagenet')


def test_pretrained_without_network_fails_fast_and_clearly(tmp_path, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(backbones, '_hub_reachable', lambda timeout=3.0: False)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path))  # nothing cached
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    start = time.monotonic()
    with pytest.raises(SegKdError, match='resnet18.*set model.pretrained to none') as err:
        build_model('swiftnet_ss_rn18', pretrained=True)
    assert '\n' not in str(err.value)
    assert time.monotonic() - start < 30


def test_weights_file_gives_its_build_arguments_and_weights(tmp_path):
    torch.manual_seed(0)
    src = build_model('pidnet_s', align_corners=True)
    path = tmp_path / 'pidnet.safetensors'
    save_model_weights(path, src, 'pidnet_s', 19)
    dst = build_model('pidnet_s', pretrained=str(path))
    assert dst.align_corners and dst.build_kwargs == {'align_corners': True}
    for key, value in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[key], value)
    # another class count: everything but the class-sized tensors of the classifiers
    seven = build_model('pidnet_s', num_classes=7, pretrained=path)
    torch.testing.assert_close(seven.layer5[0].conv2.weight, src.layer5[0].conv2.weight)
    assert seven.final_layer.conv2.weight.shape[0] == 7
    with pytest.raises(SegKdError, match='holds pidnet_s weights, not pidnet_m'):
        build_model('pidnet_m', pretrained=path)
    save_file({'conv1.0.weight': torch.zeros(3)}, str(tmp_path / 'raw.safetensors'))
    with pytest.raises(SegKdError, match='import-checkpoint'):
        build_model('pidnet_s', pretrained=tmp_path / 'raw.safetensors')


def test_backbone_only_weights_start_training_but_do_not_export(tmp_path):
    torch.manual_seed(0)
    src = build_model('pidnet_s')
    state = {k: v for k, v in src.state_dict().items() if k.startswith(('conv1.', 'layer'))}
    path = tmp_path / 'backbone.safetensors'
    save_state_dict(path, state, 'pidnet_s', 19, {}, {'contents': 'backbone'})
    model = build_model('pidnet_s', pretrained=path)
    torch.testing.assert_close(model.layer3[0].conv1.weight, src.layer3[0].conv1.weight)
    assert not torch.equal(model.final_layer.conv1.weight, src.final_layer.conv1.weight)
    with pytest.raises(SegKdError, match='only backbone weights.*model.pretrained'):
        load_model_weights(path)
    save_state_dict(path, {**state, 'layer1.0.conv1.weight': torch.zeros(1)}, 'pidnet_s', 19,
                    {}, {'contents': 'backbone'})
    with pytest.raises(SegKdError, match='1 tensor with shapes that differ for pidnet_s: layer1'):
        build_model('pidnet_s', pretrained=path)


def test_weights_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model('swiftnet_ss_rn18', num_classes=5, num_features=16).eval()
    path = tmp_path / 'w.safetensors'
    save_model_weights(path, model, 'swiftnet_ss_rn18', 5, {'num_features': 16})
    loaded = load_model_weights(path).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_no_pickle_loading_in_models():
    root = Path(models_pkg.__file__).parent
    for src in root.glob('*.py'):
        text = src.read_text()
        assert 'torch.load(' not in text or 'weights_only=True' in text, src
