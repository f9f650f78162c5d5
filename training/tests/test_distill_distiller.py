"""The distiller: frozen teacher, trainable student + adapters, taps by name, ONNX teacher."""

import numpy as np
import pytest
import torch
from torch import nn

from seg_kd_train.config import DistillTerm, LossConfig
from seg_kd_train.errors import SegKdError
from seg_kd_train.models import build_model
from seg_kd_train.models.weights import load_model_weights, save_model_weights
from seg_kd_train.train.distiller import Distiller, OnnxTeacher, TorchTeacher, load_teacher

STUDENT = ('swiftnet_ss_mnv4', {'backbone': 'mobilenetv4_conv_small', 'num_features': 16})
TEACHER = ('swiftnet_ss_rn18', {'backbone': 'resnet18', 'num_features': 32})


pytestmark = pytest.mark.usefixtures('torch_one_thread')


def make(spec, seed):
    torch.manual_seed(seed)
    return build_model(spec[0], num_classes=19, **spec[1])


@pytest.fixture(scope='module')
def batch():
    torch.manual_seed(1)
    labels = torch.randint(0, 19, (2, 64, 64))
    labels[:, :4] = 255
    return torch.randn(2, 3, 64, 64), labels


def terms(*specs):
    return [DistillTerm(**s) for s in specs]


def test_gradients_reach_student_and_adapters_not_teacher(batch):
    teacher_model = make(TEACHER, 0)
    before = {k: v.clone() for k, v in teacher_model.state_dict().items()}
    teacher = TorchTeacher(teacher_model, 19, torch.device('cpu'))
    task = Distiller(make(STUDENT, 1), teacher, LossConfig(name='border'), terms(
        {'type': 'cwd', 'student': 'features', 'teacher': 'features', 'temperature': 4.0,
         'adapter': 'conv_bn'},
        {'type': 'kl', 'temperature': 2.0},
        {'type': 'l2', 'student': 'context', 'teacher': 'context'},
        {'type': 'lad', 'student': 'stage3', 'teacher': 'stage3', 'name': 'lad3'}), 19)
    task.train()
    loss, parts = task(*batch)
    assert set(parts) == {'border', 'cwd_features', 'kl_logits', 'l2_context', 'lad3'}
    assert all(v.item() > 0 for v in parts.values())
    loss.backward()
    assert set(task.adapters) == {'cwd_features', 'l2_context', 'lad3'}  # 32 vs 16 channels etc.
    assert 'kl_logits' not in task.adapters  # logits: 19 = 19, no adapter
    for name, p in task.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad is None and not p.requires_grad for p in teacher_model.parameters())
    # the teacher stays in eval mode and outside the module tree
    assert not teacher_model.training
    assert not any(k.startswith('teacher') for k in task.state_dict())
    assert all(torch.equal(before[k], v) for k, v in teacher_model.state_dict().items())


def test_adapters_are_not_in_the_student_weights(batch, tmp_path):
    task = Distiller(make(STUDENT, 1), TorchTeacher(make(TEACHER, 0), 19, torch.device('cpu')),
                     LossConfig(name='ce'), terms({'type': 'l2', 'student': 'features',
                                                   'teacher': 'features'}), 19)
    path = tmp_path / 'student.safetensors'
    save_model_weights(path, task.student, STUDENT[0], 19, STUDENT[1])
    reloaded = load_model_weights(path)  # strict load: no extra keys in the file
    assert len(reloaded.state_dict()) == len(task.student.state_dict())
    assert any(k.startswith('adapters.') for k in task.state_dict())


def test_kd_terms_vanish_when_student_is_teacher(batch):
    student = make(STUDENT, 3)
    clone = make(STUDENT, 4)
    clone.load_state_dict(student.state_dict())
    teacher = TorchTeacher(clone, 19, torch.device('cpu'))
    task = Distiller(student, teacher, LossConfig(name='ce'), terms(
        {'type': 'kl', 'temperature': 4.0}, {'type': 'cwd', 'temperature': 1.0},
        {'type': 'cwd', 'student': 'features', 'teacher': 'features', 'temperature': 4.0,
         'name': 'cwd_feat', 'adapter': 'none'}), 19)
    task.eval()  # same BN statistics as the teacher
    _, parts = task(*batch)
    assert parts['kl_logits'].item() == pytest.approx(0.0, abs=1e-6)
    assert parts['cwd_logits'].item() == pytest.approx(0.0, abs=1e-6)
    assert parts['cwd_feat'].item() == pytest.approx(0.0, abs=1e-6)


def test_bad_taps_and_adapters_are_named():
    teacher = TorchTeacher(make(TEACHER, 0), 19, torch.device('cpu'))
    with pytest.raises(ValueError, match='no tap `nope`'):
        Distiller(make(STUDENT, 1), teacher, LossConfig(),
                  terms({'type': 'l2', 'student': 'nope', 'teacher': 'features'}), 19)
    with pytest.raises(ValueError, match='channels differ'):
        Distiller(make(STUDENT, 1), teacher, LossConfig(),
                  terms({'type': 'l2', 'student': 'features', 'teacher': 'features',
                         'adapter': 'none'}), 19)


class LogitsOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 19, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_onnx_teacher_gives_logits_for_kd(tmp_path, batch):
    torch.manual_seed(0)
    net = LogitsOnly().eval()
    path = tmp_path / 'teacher.onnx'
    torch.onnx.export(net, (batch[0],), str(path), input_names=['image'], output_names=['logits'],
                      dynamic_axes={'image': {0: 'n'}, 'logits': {0: 'n'}}, dynamo=False)
    teacher = load_teacher(path, torch.device('cpu'))
    assert isinstance(teacher, OnnxTeacher) and teacher.num_classes == 19
    out = teacher(batch[0])['logits']
    with torch.no_grad():
        assert np.allclose(out.numpy(), net(batch[0]).numpy(), atol=1e-4)
    task = Distiller(make(STUDENT, 1), teacher, LossConfig(name='ce'),
                     terms({'type': 'kl'}), 19)
    loss, parts = task(*batch)
    loss.backward()
    assert parts['kl_logits'].item() > 0
    with pytest.raises(ValueError, match='no tap `features`'):  # an ONNX has no feature taps
        Distiller(make(STUDENT, 1), teacher, LossConfig(),
                  terms({'type': 'l2', 'student': 'features', 'teacher': 'features'}), 19)


def test_deploy_onnx_cannot_teach(tmp_path):
    from tiny_models import make_tiny_onnx

    path = make_tiny_onnx(tmp_path / 'deploy.onnx')
    with pytest.raises(SegKdError, match='logits'):
        load_teacher(path, torch.device('cpu'))
    with pytest.raises(SegKdError, match='missing.safetensors'):
        load_teacher(tmp_path / 'missing.safetensors', torch.device('cpu'))


def test_pidnet_student_uses_its_boundary_losses_and_can_be_distilled(batch):
    teacher = TorchTeacher(make(TEACHER, 0), 19, torch.device('cpu'))
    torch.manual_seed(5)
    student = build_model('pidnet_s', num_classes=19)
    task = Distiller(student, teacher, LossConfig(name='pidnet', ohem_min_kept=1000),
                     terms({'type': 'kl', 'temperature': 2.0},
                           {'type': 'cwd', 'student': 'features', 'teacher': 'features',
                            'temperature': 4.0}), 19)
    loss, parts = task(*batch)
    assert {'aux_ce', 'ohem', 'boundary_bce', 'boundary_ce', 'kl_logits',
            'cwd_features'} <= set(parts)
    loss.backward()
    assert student.aux_heads is not None
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)


def test_the_teacher_runs_once_per_step_whatever_the_terms(batch):
    teacher_model = make(TEACHER, 0)
    calls = []
    teacher_model.backbone.register_forward_hook(lambda *_: calls.append(1))  # in forward_train
    task = Distiller(make(STUDENT, 1), TorchTeacher(teacher_model, 19, torch.device('cpu')),
                     LossConfig(name='border'), terms(
                         {'type': 'kl', 'temperature': 2.0},
                         {'type': 'cwd', 'temperature': 4.0},
                         {'type': 'cwd', 'student': 'features', 'teacher': 'features',
                          'temperature': 4.0, 'adapter': 'conv_bn'},
                         {'type': 'l2', 'student': 'context', 'teacher': 'context'}), 19)
    loss, _ = task(*batch)
    loss.backward()
    assert len(calls) == 1


class HalfResLogits(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 19, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_each_tensor_is_resized_once_per_step_with_the_losses_own_values(tmp_path, batch):
    # an ONNX teacher whose logits are at half the student's size: KL compares at the student's
    torch.manual_seed(0)
    path = tmp_path / 'teacher.onnx'
    torch.onnx.export(HalfResLogits().eval(), (batch[0],), str(path), input_names=['image'],
                      output_names=['logits'], dynamic_axes={'image': {0: 'n'}}, dynamo=False)
    teacher = load_teacher(path, torch.device('cpu'))
    task = Distiller(make(STUDENT, 1), teacher, LossConfig(name='ce'), terms(
        {'type': 'kl', 'temperature': 1.0}, {'type': 'kl', 'temperature': 4.0, 'name': 'kl4'}),
        19)
    images, labels = batch
    out = task.student.forward_train(images)
    t_out = task.teacher_outputs(images)
    assert t_out['logits'].shape[-2:] == (32, 32)
    (_, _, s1, t1), (_, _, s2, t2) = task.pairs(out, t_out)
    assert t1 is t2 and t1.shape == out['logits'].shape  # one resize serves both terms
    for (name, _), s, t in zip(task.terms, (s1, s2), (t1, t2), strict=True):
        alone = task.losses[name](out['logits'], t_out['logits'], labels)  # the loss resizes
        assert torch.equal(task.losses[name](s, t, labels), alone), name

    # feature terms without adapters: the student's tap resized once to the teacher's size
    torch.manual_seed(0)
    teacher16 = build_model(TEACHER[0], num_classes=19, backbone='resnet18', num_features=16)
    task = Distiller(make(STUDENT, 1), TorchTeacher(teacher16, 19, torch.device('cpu')),
                     LossConfig(name='ce'), terms(
                         {'type': 'l2', 'student': 'context', 'teacher': 'features',
                          'adapter': 'none'},
                         {'type': 'cwd', 'student': 'context', 'teacher': 'features',
                          'adapter': 'none', 'temperature': 4.0}), 19)
    out = task.student.forward_train(images)
    t_out = task.teacher_outputs(images)
    (n1, _, s1, t1), (n2, _, s2, t2) = task.pairs(out, t_out)
    assert s1 is s2 and s1.shape[-2:] == t1.shape[-2:] == (16, 16)
    assert out['taps']['context'].shape[-2:] == (2, 2)
    for name, s, t in ((n1, s1, t1), (n2, s2, t2)):
        assert torch.equal(task.losses[name](s, t),
                           task.losses[name](out['taps']['context'], t_out['features'])), name
