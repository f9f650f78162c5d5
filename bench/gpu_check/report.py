"""The GPU check's outputs: `gpu_check.json`, `gpu_check.md` and the one-screen summary."""

from pathlib import Path

from bench.gpu_check.common import write_json

PART_TITLES = {'train': '(a) Training with AMP, checkpoint and resume',
               'infer': '(b) Inference in PyTorch, batch 1',
               'runtime': '(c) The runtime: PyTorch backend, GPU copies, frame pipeline, node',
               'tensorrt': '(d) The TensorRT tests'}


def _num(value, digits: int = 1) -> str:
    if value is None or value == '':
        return '-'
    return f'{value:.{digits}f}' if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(_num(v) if not isinstance(v, str) else v for v in r) + ' |'
              for r in rows]
    return lines


def _train_lines(part: dict) -> list[str]:
    rows = []
    for r in part['rows']:
        ev = r.get('eval') or {}
        note = ', '.join(f'{k} {v:.3f}' for k, v in ev.items())
        rows.append([r['recipe'], r['mode'], ', '.join(f'{v:.3f}' for v in r['losses']),
                     r['resume'], r['seconds'], (r.get('warning') or note) or '-'])
    return _table(['recipe', 'mode', 'loss per step', 'checkpoint step -> resumed to', 's',
                   'evaluation at the last step'], rows)


def _infer_lines(part: dict) -> list[str]:
    rows, refs = [], []
    for r in part['rows']:
        if 'published_fps' in r:
            refs.append(r)
            continue
        rows.append([r['model'], r['size'], r['path'], r['dtype'], r['median_ms'], r['p99_ms'],
                     r['fps'], r['peak_mem_mib'], _num(r.get('agreement_pct'), 2),
                     _num(r.get('compile_s'))])
    lines = _table(['model', 'input (WxH)', 'path', 'dtype', 'median ms', 'p99 ms', 'FPS',
                    'peak MiB', 'labels = fp32 (%)', 'compile s'], rows)
    for r in refs:
        lines += ['', reference_sentence(r)]
    return lines


def reference_sentence(r: dict) -> str:
    """PIDNet-S measured here against its published figure."""
    ratio = (f'{r["ratio_to_published"]:.2f}x the published figure'
             if r.get('ratio_to_published') is not None else 'no ratio (dry run, tiny input)')
    return (f"Reference: {r['model']} {r['path']} at {r['size']}: {r['fps']} FPS (median "
            f"{r['median_ms']} ms) vs {r['published_fps']} FPS published on an "
            f"{r['published_on']} ({r['source']}): {ratio}.")


def _runtime_lines(part: dict) -> list[str]:
    rows = []
    for r in part['rows']:
        wall = r.get('infer_wall') or r.get('frame_wall') or r.get('round_trip') or {}
        extra = []
        if 'upload_one_frame' in r:
            wall = r['upload_one_frame']
            extra.append(f"{r['camera_size']} frame, {r['gb_per_s']} GB/s, byte-exact round trip")
        if 'inference_ms_median' in r:
            extra.append(f"camera {r['camera_size']}, inference {r['inference_ms_median']} ms")
        if 'node_start_s' in r:
            extra.append(f"node start {r['node_start_s']} s; {r.get('ros', '')}")
        rows.append([r['path'], _num(r.get('agreement_pct'), 3),
                     _num(r.get('max_confidence_diff'), 6), wall.get('median_ms'),
                     wall.get('p99_ms'), '; '.join(extra)])
    return _table(['path', 'labels = ORT CPU (%)', 'max conf diff', 'median ms', 'p99 ms',
                   'notes'], rows)


def _tensorrt_lines(part: dict) -> list[str]:
    lines = []
    for r in part['rows']:
        lines.append(f"`{r['file']}`: {r['tests']} tests, {r['passed']} passed, "
                     f"{r['skipped']} skipped, {r['failures']} failed, {r['errors']} errors.")
        lines += [f'- skip reason: {reason}' for reason in r['skip_reasons']]
    return lines


RENDER = {'train': _train_lines, 'infer': _infer_lines, 'runtime': _runtime_lines,
          'tensorrt': _tensorrt_lines}


def env_line(env: dict) -> str:
    """Versions in one line."""
    keys = ('gpu', 'torch', 'torch_cuda', 'cudnn', 'python', 'onnxruntime', 'onnx', 'onnxscript',
            'torchvision', 'timm', 'cuda_bindings', 'tensorrt', 'rclpy_importable')
    return ', '.join(f'{k} {env.get(k)}' for k in keys if k in env)


def write_report(out_dir: Path, result: dict) -> tuple[Path, Path]:
    """Write `gpu_check.json` and `gpu_check.md`; return their paths."""
    json_path, md_path = out_dir / 'gpu_check.json', out_dir / 'gpu_check.md'
    write_json(json_path, result)
    env, parts = result.get('environment', {}), result['parts']
    title = 'dry run on the CPU' if result['dry_run'] else f"on {env.get('gpu', '?')}"
    lines = [f'# GPU check ({title})', '',
             f"{result['started']}, {result['seconds']} s in all. {env_line(env)}.", '',
             '| part | status | seconds (budget) | reason |', '|---|---|---|---|']
    for name, part in parts.items():
        lines.append(f"| {name} | {part['status']} | {part.get('seconds', '-')} "
                     f"({part.get('budget_s', '-')}) | {part.get('reason', '')} |")
    for name, part in parts.items():
        lines += ['', f'## {PART_TITLES[name]}', '']
        if part.get('rows'):
            lines += RENDER[name](part)
        skipped = [s for s in part.get('steps', []) if s['status'] == 'skipped']
        if skipped:
            lines += [''] + [f"- skipped: {s['step']}: {s['reason']}" for s in skipped]
        lines += [f'- {n}' for n in part.get('notes', [])]
    md_path.write_text('\n'.join(lines) + '\n')
    return json_path, md_path


def summary(result: dict, json_path: Path, md_path: Path) -> str:
    """The one-screen summary printed last."""
    env, parts = result.get('environment', {}), result['parts']
    out = [f"GPU check{' (DRY RUN, CPU)' if result['dry_run'] else ''}: {env_line(env)}"]
    for name, part in parts.items():
        out.append(f"  {name:<9} {part['status']:<8} {part.get('seconds', '-')} s "
                   f"{part.get('reason', '')}"[:160])
    train = parts.get('train', {})
    if train.get('rows'):
        out.append(f"  training: {len(train['rows'])} recipe x mode runs with finite losses, "
                   f'each checkpointed and resumed')
    infer = parts.get('infer', {})
    best: dict = {}
    for r in infer.get('rows', []):
        if 'published_fps' in r:
            out.append('  ' + reference_sentence(r))
            continue
        key = (r['model'], r['size'])
        b = best.setdefault(key, {'fp32': None, 'best': None, 'min_agree': 100.0})
        if r['path'] == 'fp32':
            b['fp32'] = r['fps']
        elif b['best'] is None or r['fps'] > b['best'][1]:
            b['best'] = (r['path'], r['fps'])
        if r['path'] != 'fp32':
            b['min_agree'] = min(b['min_agree'], r.get('agreement_pct') or 0.0)
    for (model, size), b in best.items():
        fast = f"{b['best'][0]} {b['best'][1]} FPS" if b['best'] else '-'
        out.append(f"  {model:<22} {size:>9}: fp32 {b['fp32']} FPS, fastest other {fast}, "
                   f"labels = fp32 >= {b['min_agree']:.2f} %")
    for r in parts.get('runtime', {}).get('rows', []):
        wall = (r.get('infer_wall') or r.get('frame_wall') or r.get('round_trip')
                or r.get('upload_one_frame') or {})
        same = ('' if r.get('agreement_pct') is None
                else f"labels = ORT CPU {r['agreement_pct']:.3f} %, ")
        out.append(f"  {r['path']}: {same}median {wall.get('median_ms')} ms")
    for r in parts.get('tensorrt', {}).get('rows', []):
        out.append(f"  TensorRT tests: {r['passed']} passed, {r['skipped']} skipped "
                   f"({'; '.join(r['skip_reasons'])[:100]})")
    out.append(f'wrote {json_path} and {md_path}')
    return '\n'.join(out)
