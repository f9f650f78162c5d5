"""Part (b): every student (and the teacher once) in PyTorch: latency, FPS, peak memory, agreement.

Each model is the deploy head (normalisation, network, argmax, confidence: what the model file
computes and the node runs) with seeded random weights (latency does not depend on them), batch 1,
on one smooth street-like uint8 RGB frame. Paths, in three phases so that a failure of a fragile
path loses the least:
1. eager: fp32 (the reference), fp16 and bf16 autocast, channels_last with the plan's fast dtype;
   and PIDNet-S fp32 eager, network only, against its published FPS;
2. a CUDA graph of the channels_last fast-dtype forward (replayed);
3. `torch.compile` of the channels_last fast-dtype forward, for the plan's few compile models.
Latency: CUDA events around each call after warm-up (perf_counter on the CPU); FPS = 1000 /
median. Peak memory: `torch.cuda.max_memory_allocated` over that path, weights included.
Agreement: the share of pixels whose label equals the fp32 eager label.
"""

import contextlib
import gc
import sys
import time

import numpy as np

from bench.gpu_check.common import (
    PartRecord,
    agreement,
    frames,
    latency,
    run_part,
    time_ms,
)

DTYPES = {'fp16': 'float16', 'bf16': 'bfloat16'}


def _build(name: str, device: str):
    import torch

    from seg_kd_train.export.deploy_head import DeployHead
    from seg_kd_train.models import build_model, count_parameters

    torch.manual_seed(0)  # the same weights in every phase
    model = build_model(name).eval()
    params = round(count_parameters(model) / 1e6, 2)
    return DeployHead(model).eval().to(device), params


def _input(height: int, width: int, device: str):
    """One frame as the model file takes it: the camera's bytes, uint8 `[1, H, W, 3]` RGB."""
    import torch

    return torch.from_numpy(frames(1, height, width)).to(device)


def _autocast(device: str, dtype: str | None, cache: bool = True):
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.split(':')[0], dtype=getattr(torch, DTYPES[dtype]),
                          cache_enabled=cache)


def _labels(out) -> np.ndarray:
    return out[0].detach().cpu().numpy()


def _measure(fn, device: str, warmup: int, iters: int) -> tuple[dict, np.ndarray]:
    """Time `fn`; return the latency fields with peak memory, and the labels of one more call."""
    import torch

    cuda = device.startswith('cuda')
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = time_ms(fn, warmup, iters, device)
    labels = _labels(fn())
    fields = latency(times)
    fields['peak_mem_mib'] = (round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
                              if cuda else None)
    return fields, labels


def eager_paths(plan: dict, record: PartRecord, name: str, size, reference: dict) -> None:
    """fp32, fp16, bf16 and channels_last rows of one model at one size."""
    import torch

    p, device = plan['infer'], plan['device']
    head, params = _build(name, device)
    x = _input(size[0], size[1], device)
    paths = [('fp32', None, False), ('fp16', 'fp16', False), ('bf16', 'bf16', False),
             ('channels_last', p['fast_dtype'], True)]
    with torch.inference_mode():
        for path, dtype, channels_last in paths:
            if path in p['skip']:
                continue
            if channels_last:  # the weights; the input is NHWC bytes already
                head = head.to(memory_format=torch.channels_last)

            def run(head=head, x=x, dtype=dtype):
                with _autocast(device, dtype):
                    return head(x)
            fields, labels = _measure(run, device, p['warmup'], p['iters'])
            if path == 'fp32':
                reference[(name, tuple(size))] = labels
            record.row({'model': name, 'size': f'{size[1]}x{size[0]}', 'path': path,
                        'dtype': dtype or 'fp32', 'params_m': params, **fields,
                        'agreement_pct': agreement(labels, reference[(name, tuple(size))])})


def pidnet_reference(plan: dict, record: PartRecord) -> None:
    """PIDNet-S fp32 eager, network only (logits, as the paper times it), at 2048x1024."""
    import torch

    from seg_kd_train.export.deploy_head import DeployHead
    from seg_kd_train.models import build_model

    ref, device, p = plan['infer']['reference'], plan['device'], plan['infer']
    height, width = ref['size']
    torch.manual_seed(0)
    model = build_model(ref['model']).eval().to(device)
    with torch.inference_mode():  # float NCHW, as PIDNet's speed test feeds its network
        x = DeployHead(model).to(device).normalise(_input(height, width, device)).contiguous()
    with torch.inference_mode():
        fields, _ = _measure(lambda: (model(x),), device, p['warmup'], p['iters'])
    ratio = round(fields['fps'] / ref['published_fps'], 2) if not plan['dry_run'] else None
    record.row({'model': ref['model'], 'size': f'{width}x{height}',
                'path': 'fp32 network only (reference)', 'dtype': 'fp32', **fields,
                'published_fps': ref['published_fps'], 'published_on': ref['published_on'],
                'ratio_to_published': ratio, 'source': ref['source']})


def graph_path(plan: dict, record: PartRecord, name: str, size, reference: dict) -> None:
    """Capture the channels_last fast-dtype forward in a CUDA graph and time its replays."""
    import torch

    p, device = plan['infer'], plan['device']
    head, params = _build(name, device)
    head = head.to(memory_format=torch.channels_last)
    x = _input(size[0], size[1], device)
    with torch.inference_mode():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up (cuDNN autotuning) off the capture
            for _ in range(3):
                with _autocast(device, p['fast_dtype'], cache=False):
                    head(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), _autocast(device, p['fast_dtype'], cache=False):
            out = head(x)
        times = time_ms(graph.replay, p['warmup'], p['iters'], device)
        torch.cuda.synchronize()
        labels = _labels(out)
    fields = latency(times)
    fields['peak_mem_mib'] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    record.row({'model': name, 'size': f'{size[1]}x{size[0]}', 'path': 'cuda_graph',
                'dtype': p['fast_dtype'], 'params_m': params, **fields,
                'agreement_pct': agreement(labels, reference[(name, tuple(size))])})


def compile_path(plan: dict, record: PartRecord, name: str, size, reference: dict) -> None:
    """`torch.compile` (default mode) of the channels_last fast-dtype forward."""
    import torch

    p, device = plan['infer'], plan['device']
    head, params = _build(name, device)
    head = head.to(memory_format=torch.channels_last)
    x = _input(size[0], size[1], device)
    compiled = torch.compile(head)

    def run():
        with _autocast(device, p['fast_dtype']):
            return compiled(x)
    with torch.inference_mode():
        start = time.monotonic()
        run()
        torch.cuda.synchronize()
        compile_s = round(time.monotonic() - start, 1)
        fields, labels = _measure(run, device, p['warmup'], p['iters'])
    record.row({'model': name, 'size': f'{size[1]}x{size[0]}', 'path': 'compile',
                'dtype': p['fast_dtype'], 'params_m': params, **fields, 'compile_s': compile_s,
                'agreement_pct': agreement(labels, reference[(name, tuple(size))])})
    torch._dynamo.reset()  # drop the compiled graphs before the next model


def _free(device: str) -> None:
    gc.collect()
    if device.startswith('cuda'):
        import torch

        torch.cuda.empty_cache()


def body(plan: dict, record: PartRecord) -> None:
    """The three phases over every model and size of the plan."""
    import torch

    from seg_kd_train.models import TEACHER, list_models

    p, device = plan['infer'], plan['device']
    if device.startswith('cuda'):
        torch.backends.cudnn.benchmark = True  # as PIDNet's and SwiftNet's speed tests do
    record.note(f"cudnn.benchmark={torch.backends.cudnn.benchmark}, cudnn.allow_tf32="
                f"{torch.backends.cudnn.allow_tf32} (fp32 convolutions may use TF32), "
                f"matmul precision {torch.get_float32_matmul_precision()}; warm-up "
                f"{p['warmup']}, timed calls {p['iters']}; weights random (seeded)")
    if p.get('note'):
        record.note(p['note'])
    for path, reason in p['skip'].items():
        record.skip(f'{path} (every model)', reason)
    models = p['models']
    if models == 'students':
        models = [m for m in list_models() if m != TEACHER]
    students = [(m, s) for m in models for s in p['sizes']]
    teacher = [(TEACHER, s) for s in p['teacher_sizes']]
    reference: dict = {}
    for name, size in students:
        with record.step(f'eager {name} {size[1]}x{size[0]}', need_s=p['need_s']):
            eager_paths(plan, record, name, size, reference)
        _free(device)
    with record.step('PIDNet-S reference', need_s=p['need_s']):
        pidnet_reference(plan, record)
    _free(device)
    for name, size in teacher:
        with record.step(f'eager {name} {size[1]}x{size[0]}', need_s=p['need_s']):
            eager_paths(plan, record, name, size, reference)
        _free(device)
    jobs = students + teacher
    if 'cuda_graph' not in p['skip']:
        for name, size in jobs:
            with record.step(f'cuda_graph {name} {size[1]}x{size[0]}', need_s=p['need_s']):
                graph_path(plan, record, name, size, reference)
            _free(device)
    if 'compile' not in p['skip']:
        for name in p['compile_models']:
            for size in p['compile_sizes']:
                with record.step(f'compile {name} {size[1]}x{size[0]}',
                                 need_s=p['compile_need_s']):
                    compile_path(plan, record, name, size, reference)
                _free(device)


if __name__ == '__main__':
    sys.exit(run_part('infer', body))
