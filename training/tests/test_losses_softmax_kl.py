"""`softmax_kl`, the one KL between softmaxes (pixel KL and CWD), and its written backward."""

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from seg_kd_train.losses import ChannelWiseDivergence, PixelKLDivLoss
from seg_kd_train.losses.kd import softmax_kl


def reference(student, teacher, temperature, dim):
    """The formula as plain autograd operations (what the losses computed before)."""
    log_s = F.log_softmax(student / temperature, dim)
    log_t = F.log_softmax(teacher / temperature, dim)
    return log_t.exp() * (log_t - log_s)


@pytest.mark.parametrize('temperature', [1.0, 2.0, 4.0])
@pytest.mark.parametrize('dim', [1, 2])
def test_values_equal_the_formula_and_gradients_pass_gradcheck(temperature, dim):
    torch.manual_seed(0)
    student = (3 * torch.randn(2, 5, 7, dtype=torch.float64)).requires_grad_()
    teacher = 3 * torch.randn(2, 5, 7, dtype=torch.float64)
    assert torch.equal(softmax_kl(student, teacher, temperature, dim),
                       reference(student, teacher, temperature, dim))
    # the written backward against finite differences, for any upstream gradient
    assert torch.autograd.gradcheck(lambda s: softmax_kl(s, teacher, temperature, dim),
                                    (student,))


def test_losses_match_autograd_of_the_formula_in_float32():
    torch.manual_seed(1)
    s = 4 * torch.randn(3, 19, 24, 20)
    t = 4 * torch.randn(3, 19, 24, 20)
    labels = torch.randint(0, 19, (3, 24, 20))
    labels[:, :5] = 255
    valid = labels != 255
    for loss, ref in [
        (PixelKLDivLoss(2.0), lambda x: reference(x, t, 2.0, 1).sum(1)[valid].mean() * 4.0),
        (ChannelWiseDivergence(4.0),
         lambda x: 16.0 * reference(x.reshape(3, 19, -1), t.reshape(3, 19, -1), 4.0, 2).sum()
         / (3 * 19)),
    ]:
        a = s.clone().requires_grad_()
        b = s.clone().requires_grad_()
        value = loss(a, t, labels) if isinstance(loss, PixelKLDivLoss) else loss(a, t)
        expected = ref(b)
        assert torch.equal(value, expected)  # the same operations forward: the same bits
        value.backward()
        expected.backward()
        scale = b.grad.abs().max()
        assert (a.grad - b.grad).abs().max() <= 1e-6 * scale


def test_teacher_gets_no_gradient_and_may_be_an_inference_tensor():
    torch.manual_seed(2)
    student = torch.randn(2, 4, 3, 3, requires_grad=True)
    with torch.inference_mode():
        teacher = torch.randn(2, 4, 3, 3)
    grad_teacher = torch.randn(2, 4, 3, 3, requires_grad=True)
    softmax_kl(student, teacher, 2.0, 1).sum().backward()  # nothing of the teacher is saved
    softmax_kl(student, grad_teacher, 2.0, 1).sum().backward()
    assert student.grad is not None and grad_teacher.grad is None
