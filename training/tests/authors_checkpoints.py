"""State dicts in the exact key layouts of the authors' published checkpoints, random weights.

The key names and shapes are written out from the authors' code (XuJiacong/PIDNet
models/pidnet.py and model_utils.py; orsic/swiftnet models/resnet/resnet_single_scale.py,
resnet_pyramid.py, models/util.py, semseg.py and configs/rn18_*.py), not from this project's
models, so an import that maps them is checked against an independent description. BatchNorm
statistics are random and non-trivial.
"""

import torch

BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked', 'img_mean', 'img_std')
SWIFTNET_MEAN = [73.15, 82.90, 72.3]  # their configs/rn18_*.py, 0-255 pixels
SWIFTNET_STD = [47.67, 48.49, 47.73]
# parameters of the authors' models with 19 classes, counted from their classes here
# (PIDNet: without / with the auxiliary heads seghead_p and seghead_d)
AUTHORS_PARAMETERS = {'swiftnet_ss_rn18': 11_797_071, 'swiftnet_pyr_rn18': 12_056_275,
                      'pidnet_s': (7_625_715, 7_720_935), 'pidnet_m': (28_538_515, 28_763_111),
                      'pidnet_l': (36_939_571, 37_314_311)}


class _Layout:
    """Adds tensors by name, with random values (BatchNorm statistics included)."""

    def __init__(self, seed: int):
        self.gen = torch.Generator().manual_seed(seed)
        self.state: dict[str, torch.Tensor] = {}

    def conv(self, name: str, cout: int, cin: int, k: int, bias: bool = False) -> None:
        std = (2.0 / (cin * k * k)) ** 0.5
        self.state[f'{name}.weight'] = torch.randn(cout, cin, k, k, generator=self.gen) * std
        if bias:
            self.state[f'{name}.bias'] = torch.rand(cout, generator=self.gen) * 0.2 - 0.1

    def bn(self, name: str, n: int) -> None:
        rand = torch.rand
        self.state[f'{name}.weight'] = rand(n, generator=self.gen) + 0.5
        self.state[f'{name}.bias'] = rand(n, generator=self.gen) * 0.4 - 0.2
        self.state[f'{name}.running_mean'] = rand(n, generator=self.gen) * 0.4 - 0.2
        self.state[f'{name}.running_var'] = rand(n, generator=self.gen) + 0.5
        self.state[f'{name}.num_batches_tracked'] = torch.tensor(1000)

    def bn_relu_conv(self, name: str, cin: int, cout: int, k: int, bias: bool = False) -> None:
        """Their `_BNReluConv`: `norm`, `relu`, `conv`."""
        self.bn(f'{name}.norm', cin)
        self.conv(f'{name}.conv', cout, cin, k, bias)


def _resnet18(lay: _Layout, levels: int) -> None:
    """Their ResNet-18 trunk under `backbone.`; with levels > 1 the pyramid's per-scale norms."""
    def bn(name, n):
        if levels == 1:
            lay.bn(name, n)
        for level in range(levels if levels > 1 else 0):
            lay.bn(f'{name}.{level}', n)  # nn.ModuleList of one BatchNorm per scale

    lay.conv('backbone.conv1', 64, 3, 7)
    bn('backbone.bn1', 64)
    cin = 64
    for i, planes in enumerate((64, 128, 256, 512), start=1):
        for b in range(2):
            p = f'backbone.layer{i}.{b}'
            lay.conv(f'{p}.conv1', planes, cin if b == 0 else planes, 3)
            bn(f'{p}.bn1', planes)
            lay.conv(f'{p}.conv2', planes, planes, 3)
            bn(f'{p}.bn2', planes)
            if b == 0 and cin != planes:  # one BatchNorm, shared by the scales in the pyramid
                lay.conv(f'{p}.downsample.0', planes, cin, 1)
                lay.bn(f'{p}.downsample.1', planes)
        cin = planes
    lay.state['backbone.img_mean'] = torch.tensor(SWIFTNET_MEAN).view(1, 3, 1, 1)
    lay.state['backbone.img_std'] = torch.tensor(SWIFTNET_STD).view(1, 3, 1, 1)


def swiftnet_single_scale(seed: int = 0, num_classes: int = 19) -> dict[str, torch.Tensor]:
    """`SemsegModel(resnet18(...), 19)` of configs/rn18_single_scale.py: `state_dict()`."""
    lay = _Layout(seed)
    _resnet18(lay, levels=1)
    spp = 'backbone.spp.spp'
    lay.bn_relu_conv(f'{spp}.spp_bn', 512, 128, 1)  # bottleneck to spp_size = num_features
    for i in range(3):  # num_levels = 3, level_size = 128 // 3
        lay.bn_relu_conv(f'{spp}.spp{i}', 128, 42, 1)
    lay.bn_relu_conv(f'{spp}.spp_fuse', 128 + 3 * 42, 128, 1)
    for i, skip in enumerate((256, 128, 64)):  # reversed: upsample.0 takes layer3's skip
        lay.bn_relu_conv(f'backbone.upsample.{i}.bottleneck', skip, 128, 1)
        lay.bn_relu_conv(f'backbone.upsample.{i}.blend_conv', 128, 128, 3)
    lay.bn_relu_conv('logits', 128, num_classes, 1, bias=True)
    return lay.state


def swiftnet_pyramid(seed: int = 0, num_classes: int = 19) -> dict[str, torch.Tensor]:
    """`SemsegModel(resnet18(pyramid_levels=3, ...), 19)` of configs/rn18_pyramid.py."""
    lay = _Layout(seed)
    _resnet18(lay, levels=3)
    for i, cin in enumerate((512, 256, 128, 64)):  # reversed: index 0 projects layer4
        lay.conv(f'backbone.upsample_bottlenecks.{i}', 128, cin, 1)
    for i in range(5):  # 2 + pyramid_levels blends, from stride 64 down to 4
        lay.bn_relu_conv(f'backbone.upsample_blends.{i}.blend_conv', 128, 128, 3)
    lay.bn_relu_conv('logits', 128, num_classes, 1, bias=True)
    return lay.state


def pidnet(variant: str, seed: int = 0, num_classes: int = 19,
           heads: bool = True) -> dict[str, torch.Tensor]:
    """The state dict of their `PIDNet(augment=True)` for `variant` in s, m, l (no prefix)."""
    m, n, p, ppm, head = {'s': (2, 3, 32, 96, 128), 'm': (2, 3, 64, 96, 128),
                          'l': (3, 4, 64, 112, 256)}[variant]
    lay = _Layout(seed)

    def conv_bn(name, cout, cin, k=1):
        lay.conv(f'{name}.0', cout, cin, k)
        lay.bn(f'{name}.1', cout)

    def bn_relu_conv(name, cin, cout, k=1, groups=1, first=0):
        lay.bn(f'{name}.{first}', cin)
        lay.conv(f'{name}.{first + 2}', cout, cin // groups, k)

    def basic(name, cin, planes):
        lay.conv(f'{name}.conv1', planes, cin, 3)
        lay.bn(f'{name}.bn1', planes)
        lay.conv(f'{name}.conv2', planes, planes, 3)
        lay.bn(f'{name}.bn2', planes)
        if cin != planes:
            conv_bn(f'{name}.downsample', planes, cin)

    def bottleneck(name, cin, planes):
        lay.conv(f'{name}.conv1', planes, cin, 1)
        lay.bn(f'{name}.bn1', planes)
        lay.conv(f'{name}.conv2', planes, planes, 3)
        lay.bn(f'{name}.bn2', planes)
        lay.conv(f'{name}.conv3', 2 * planes, planes, 1)
        lay.bn(f'{name}.bn3', 2 * planes)
        if cin != 2 * planes:
            conv_bn(f'{name}.downsample', 2 * planes, cin)

    def layer(name, block, cin, planes, blocks):  # their _make_layer
        for b in range(blocks):
            block(f'{name}.{b}', cin if b == 0 else planes * (2 if block is bottleneck else 1),
                  planes)

    def seghead(name, cin, mid, cout):
        lay.bn(f'{name}.bn1', cin)
        lay.conv(f'{name}.conv1', mid, cin, 3)
        lay.bn(f'{name}.bn2', mid)
        lay.conv(f'{name}.conv2', cout, mid, 1, bias=True)

    lay.conv('conv1.0', p, 3, 3, bias=True)
    lay.bn('conv1.1', p)
    lay.conv('conv1.3', p, p, 3, bias=True)
    lay.bn('conv1.4', p)
    layer('layer1', basic, p, p, m)
    layer('layer2', basic, p, 2 * p, m)
    layer('layer3', basic, 2 * p, 4 * p, n)
    layer('layer4', basic, 4 * p, 8 * p, n)
    layer('layer5', bottleneck, 8 * p, 8 * p, 2)
    conv_bn('compression3', 2 * p, 4 * p)
    conv_bn('compression4', 2 * p, 8 * p)
    for pag in ('pag3', 'pag4'):
        conv_bn(f'{pag}.f_x', p, 2 * p)
        conv_bn(f'{pag}.f_y', p, 2 * p)
    layer('layer3_', basic, 2 * p, 2 * p, m)
    layer('layer4_', basic, 2 * p, 2 * p, m)
    layer('layer5_', bottleneck, 2 * p, 2 * p, 1)
    light = m == 2
    basic('layer3_d', 2 * p, p if light else 2 * p)  # their _make_single_layer
    if light:
        layer('layer4_d', bottleneck, p, p, 1)
    else:
        basic('layer4_d', 2 * p, 2 * p)
    conv_bn('diff3', p if light else 2 * p, 4 * p, 3)
    conv_bn('diff4', 2 * p, 8 * p, 3)
    layer('layer5_d', bottleneck, 2 * p, 2 * p, 1)
    bn_relu_conv('spp.scale0', 16 * p, ppm)
    for i in range(1, 5):  # AvgPool (or AdaptiveAvgPool) first
        bn_relu_conv(f'spp.scale{i}', 16 * p, ppm, first=1)
    if light:
        bn_relu_conv('spp.scale_process', 4 * ppm, 4 * ppm, 3, groups=4)
        conv_bn('dfm.conv_p', 4 * p, 4 * p)
        conv_bn('dfm.conv_i', 4 * p, 4 * p)
    else:
        for i in range(1, 5):
            bn_relu_conv(f'spp.process{i}', ppm, ppm, 3)
        bn_relu_conv('dfm.conv', 4 * p, 4 * p, 3)
    bn_relu_conv('spp.compression', 5 * ppm, 4 * p)
    bn_relu_conv('spp.shortcut', 16 * p, 4 * p)
    if heads:
        seghead('seghead_p', 2 * p, head, num_classes)
        seghead('seghead_d', 2 * p, p, 1)
    seghead('final_layer', 4 * p, head, num_classes)
    return lay.state


def pidnet_cityscapes(variant: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """What their tools/train.py saves: `FullModel(model, sem_loss, bd_loss).state_dict()`."""
    state = {f'model.{k}': v for k, v in pidnet(variant, seed).items()}
    state['sem_loss.criterion.weight'] = torch.rand(19)  # OHEM's class weights (a buffer)
    return state


def pidnet_imagenet(variant: str, seed: int = 0) -> dict:
    """An ImageNet file: `{'state_dict': ...}`, the backbone plus their ImageNet classifier.

    Which segmentation layers their ImageNet files hold is not in their code; this one holds
    the I and P branches, and the classifier keys reported by users (down5, last_layer, linear).
    """
    backbone = ('conv1.', 'layer', 'compression', 'pag')
    state = {k: v for k, v in pidnet(variant, seed, heads=False).items()
             if k.startswith(backbone) and '_d' not in k}
    gen = torch.Generator().manual_seed(seed + 1)
    state['down5.0.weight'] = torch.randn(64, 32, 3, 3, generator=gen)
    state['last_layer.0.weight'] = torch.randn(1024, 64, 1, 1, generator=gen)
    state['linear.weight'] = torch.randn(1000, 1024, generator=gen)
    state['linear.bias'] = torch.zeros(1000)
    return {'state_dict': state, 'epoch': 100}


def parameter_count(state: dict[str, torch.Tensor]) -> int:
    """Parameters in a state dict (BatchNorm statistics and normalisation buffers left out)."""
    return sum(v.numel() for k, v in state.items() if not k.endswith(BUFFERS))
