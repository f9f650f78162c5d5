"""PyTorch backend on a tiny `.pt2` exported here, and its parity with ONNX Runtime."""

import json
import zipfile

import numpy as np
import onnx
import pytest
from tiny_models import normalisation_constants, tiny_metadata

from seg_kd_ros.backends import ModelLoadError, create_backend
from seg_kd_ros.model_metadata import METADATA_KEY

torch = pytest.importorskip('torch')
# torch.onnx.export(dynamo=False) warns that the TorchScript exporter is legacy
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')
HEIGHT, WIDTH = 24, 32


class TinySegmenter(torch.nn.Module):
    """Camera bytes in, normalised inside, a small conv net, the deploy head (model file 2)."""

    def __init__(self, num_classes: int = 19, temperature: float = 1.0):
        super().__init__()
        meta = tiny_metadata(HEIGHT, WIDTH)
        mean255, scale = normalisation_constants(meta['mean'], meta['std'])
        self.register_buffer('mean255', torch.from_numpy(mean255))
        self.register_buffer('scale', torch.from_numpy(scale))
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, num_classes, 1))
        self.temperature = temperature

    def normalise(self, image):
        """uint8 [N, H, W, 3] -> float32 [N, 3, H, W], as the model file's graph does it."""
        return (image.permute(0, 3, 1, 2).float() - self.mean255) * self.scale

    def forward(self, image):
        logits = self.body(self.normalise(image))
        confidence = torch.softmax(logits / self.temperature, dim=1).amax(dim=1)
        return logits.argmax(dim=1).to(torch.uint8), confidence


def make_module(seed: int = 0) -> TinySegmenter:
    torch.manual_seed(seed)
    module = TinySegmenter(temperature=1.5).eval()
    with torch.no_grad():  # non-trivial BN statistics, so folding them matters
        module.body[1].running_mean.uniform_(-0.5, 0.5)
        module.body[1].running_var.uniform_(0.5, 2.0)
        module.body[3].weight.mul_(4.0)
    return module


def save_pt2(module, path, metadata, batch: int = 1, dynamic: bool = False):
    example = torch.zeros(batch, HEIGHT, WIDTH, 3, dtype=torch.uint8)
    shapes = ({0: torch.export.Dim('batch', min=1, max=8)},) if dynamic else None
    program = torch.export.export(module, (example,), dynamic_shapes=shapes)
    extra = {} if metadata is None else {'seg_kd_ros.json': json.dumps(metadata)}
    torch.export.save(program, str(path), extra_files=extra)
    return path


def save_onnx(module, path, metadata):
    torch.onnx.export(module, (torch.zeros(1, HEIGHT, WIDTH, 3, dtype=torch.uint8),), str(path),
                      dynamo=False,
                      input_names=['image'], output_names=['labels', 'confidence'],
                      opset_version=17)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata)})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp('torch_models')
    module, meta = make_module(), tiny_metadata(HEIGHT, WIDTH, temperature=1.5)
    return {
        'module': module,
        'pt2': save_pt2(module, root / 'tiny.pt2', meta),
        'dynamic': save_pt2(module, root / 'dynamic.pt2', meta, batch=2, dynamic=True),
        'onnx': save_onnx(module, root / 'tiny.onnx', meta),
    }


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, HEIGHT, WIDTH, 3), dtype=np.uint8)


def test_torch_backend_runs_the_program(models):
    backend = create_backend(models['pt2'])  # 'auto' picks torch for .pt2
    assert (backend.name, backend.device, backend.precision) == ('torch', 'cpu', 'fp32')
    assert backend.metadata.input_size == (HEIGHT, WIDTH) and backend.metadata.temperature == 1.5
    batch = images(1)
    labels, confidence = backend.infer(batch)
    assert labels.shape == confidence.shape == (1, HEIGHT, WIDTH)
    assert labels.dtype == np.uint8 and confidence.dtype == np.float32
    with torch.no_grad():  # the same bytes into the PyTorch module
        ref_labels, ref_confidence = models['module'](torch.from_numpy(batch))
    np.testing.assert_array_equal(labels, ref_labels.numpy())
    np.testing.assert_allclose(confidence, ref_confidence.numpy(), rtol=0, atol=1e-6)
    assert len(np.unique(labels)) > 3


def test_labels_equal_onnxruntime_on_same_weights(models):
    torch_backend = create_backend(models['pt2'], backend='torch')
    ort_backend = create_backend(models['onnx'])
    assert ort_backend.name == 'onnxruntime' and ort_backend.metadata == torch_backend.metadata
    batch = images(3, seed=7)
    t_labels, t_conf = torch_backend.infer(batch)
    o_labels, o_conf = ort_backend.infer(batch)
    # pixels whose two best logits nearly tie may flip with float rounding: exclude only those
    module = models['module']
    with torch.no_grad():
        top2 = module.body(module.normalise(torch.from_numpy(batch))).topk(2, dim=1).values
    clear = ((top2[:, 0] - top2[:, 1]) > 1e-4).numpy()
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(t_labels[clear], o_labels[clear])
    np.testing.assert_allclose(t_conf, o_conf, rtol=0, atol=1e-5)


def test_dynamic_batch_and_static_batch_loop(models):
    batch = images(3, seed=2)
    static = create_backend(models['pt2']).infer(batch)  # batch-1 program: one call per image
    dynamic = create_backend(models['dynamic']).infer(batch)
    for a, b in zip(static, dynamic, strict=True):
        assert a.shape == (3, HEIGHT, WIDTH)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_wrong_image_size_is_rejected(models):
    backend = create_backend(models['pt2'])
    with pytest.raises(ValueError, match='resize first'):
        backend.infer(np.zeros((1, HEIGHT * 2, WIDTH, 3), np.uint8))


def test_float_program_of_format_1_is_refused(tmp_path):
    class FloatInput(torch.nn.Module):
        def forward(self, image):
            return image[:, 0].to(torch.uint8), image[:, 0]

    example = torch.zeros(1, 3, HEIGHT, WIDTH)
    program = torch.export.export(FloatInput(), (example,))
    path = tmp_path / 'float.pt2'
    torch.export.save(program, str(path),
                      extra_files={'seg_kd_ros.json': json.dumps(tiny_metadata(HEIGHT, WIDTH))})
    with pytest.raises(ModelLoadError, match=r'float.pt2: input must be uint8 \[N, H, W, 3\]'):
        create_backend(path)


def test_missing_and_corrupt_archives(tmp_path, models):
    with pytest.raises(ModelLoadError, match='gone.pt2: model file does not exist'):
        create_backend(tmp_path / 'gone.pt2')
    corrupt = tmp_path / 'corrupt.pt2'
    corrupt.write_bytes(b'PK\x03\x04 this is not a zip archive')
    with pytest.raises(ModelLoadError, match='corrupt.pt2: not a loadable torch.export archive'):
        create_backend(corrupt)
    truncated = tmp_path / 'truncated.pt2'
    truncated.write_bytes(models['pt2'].read_bytes()[:2000])
    with pytest.raises(ModelLoadError, match='truncated.pt2: not a loadable') as info:
        create_backend(truncated)
    assert '\n' not in str(info.value)
    damaged = bytearray(models['pt2'].read_bytes())  # a valid zip whose members are garbage
    with zipfile.ZipFile(models['pt2']) as archive:
        info = archive.getinfo(next(n for n in archive.namelist() if n.endswith('model.json')))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged[start:start + 64] = b'\xff' * 64
    (tmp_path / 'damaged.pt2').write_bytes(bytes(damaged))
    with pytest.raises(ModelLoadError, match='damaged.pt2: not a loadable torch.export archive'):
        create_backend(tmp_path / 'damaged.pt2')


def test_archive_without_metadata(tmp_path, models):
    path = save_pt2(models['module'], tmp_path / 'plain.pt2', None)
    with zipfile.ZipFile(path) as archive:
        assert not any(n.endswith('seg_kd_ros.json') for n in archive.namelist())
    with pytest.raises(ModelLoadError, match="plain.pt2: archive has no 'seg_kd_ros.json'"):
        create_backend(path)


def test_archive_with_invalid_metadata(tmp_path, models):
    meta = tiny_metadata(HEIGHT, WIDTH)
    meta['std'] = [0.2, 0.2]
    path = save_pt2(models['module'], tmp_path / 'badmeta.pt2', meta)
    with pytest.raises(ModelLoadError, match="badmeta.pt2: key 'std' must be 3 numbers"):
        create_backend(path)


def test_metadata_size_must_match_program(tmp_path, models):
    path = save_pt2(models['module'], tmp_path / 'size.pt2', tiny_metadata(HEIGHT, WIDTH * 2))
    with pytest.raises(ModelLoadError, match='size.pt2: program input is'):
        create_backend(path)


def test_program_returning_logits_is_rejected(tmp_path):
    class LogitsOnly(torch.nn.Module):
        def forward(self, image):
            x = image.permute(0, 3, 1, 2).float()
            return x[:, :1] * 2.0, x[:, 0]

    path = save_pt2(LogitsOnly(), tmp_path / 'logits.pt2', tiny_metadata(HEIGHT, WIDTH))
    with pytest.raises(ModelLoadError, match='logits.pt2: output labels must be torch.uint8'):
        create_backend(path)


def test_cuda_without_gpu(models):
    if torch.cuda.is_available():
        pytest.skip('a CUDA GPU is present')
    with pytest.raises(ModelLoadError, match="tiny.pt2: device 'cuda' requested but torch sees"):
        create_backend(models['pt2'], device='cuda')
