"""Where should the resize to the network size and back happen: in the node or in the graph?

Runs one model file two ways on the same frames, interleaved run by run so that a loaded machine
slows both alike, and prints the median of each:

- node: the node resizes the frame to the network size (cv2, bilinear on uint8), the graph runs at
  the network size, the node resizes labels (nearest-exact) and confidence (bilinear) back;
- graph: the same graph behind ONNX `Resize` nodes (the frame's bytes at camera size in; bilinear
  down, labels nearest-exact and confidence bilinear back up, half-pixel centres), so the node
  only converts the message.

Usage:
    python bench/resize_placement.py --student pidnet_s --repeats 10 --threads 2
    python bench/resize_placement.py --model my_model.onnx

`--student` (default pidnet_s) exports that registered network with random weights (they do not
change the timing) at `--input-size` (HxW, default 512x1024) with `seg-kd export`'s code;
`--model` takes any format-2 `.onnx` with a static input size. Prints one Markdown row per frame
size.
"""

import argparse
from pathlib import Path
import statistics
import tempfile
import time

from node_stages import export_student, parse_size
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from seg_kd_ros.backends import create_backend
from seg_kd_ros.postprocess import resize_outputs
from seg_kd_ros.preprocessing import resize_to_network
from seg_kd_train.commands.arguments import SIZE_HELP, SIZE_METAVAR, image_size


def with_resize_in_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model file with Resize in front (camera size -> network) and behind (and back)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    net_h, net_w = (d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:3])
    for node in graph.node:
        node.input[:] = ['net_image' if i == 'image' else i for i in node.input]
        node.output[:] = [{'labels': 'net_labels', 'confidence': 'net_conf'}.get(o, o)
                          for o in node.output]
    graph.initializer.extend([
        numpy_helper.from_array(np.array([1, net_h, net_w, 3], np.int64), 'rs_net_size'),
        numpy_helper.from_array(np.array([1], np.int64), 'rs_one')])
    graph.node.extend([
        helper.make_node('Resize', ['image', '', '', 'rs_net_size'], ['net_image'],
                         mode='linear', coordinate_transformation_mode='half_pixel'),
        helper.make_node('Shape', ['image'], ['rs_hw'], start=1, end=3),
        helper.make_node('Concat', ['rs_one', 'rs_hw'], ['rs_out_size'], axis=0),
        helper.make_node('Resize', ['net_labels', '', '', 'rs_out_size'], ['labels'],
                         mode='nearest', coordinate_transformation_mode='half_pixel',
                         nearest_mode='round_prefer_ceil'),
        helper.make_node('Resize', ['net_conf', '', '', 'rs_out_size'], ['confidence'],
                         mode='linear', coordinate_transformation_mode='half_pixel'),
    ])
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info('image', TensorProto.UINT8,
                                                     [1, 'H', 'W', 3]))
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info('labels', TensorProto.UINT8, [1, 'H', 'W']),
                         helper.make_tensor_value_info('confidence', TensorProto.FLOAT,
                                                       [1, 'H', 'W'])])
    nodes = list(graph.node)  # topological order: the front Resize first
    front = [n for n in nodes if n.output[0] == 'net_image']
    del graph.node[:]
    graph.node.extend(front + [n for n in nodes if n not in front])
    onnx.checker.check_model(model)
    return model


def resize_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """Just the Resize nodes of `with_resize_in_graph` (network outputs given as inputs)."""
    model = with_resize_in_graph(model)
    graph = model.graph
    ours = ('net_image', 'labels', 'confidence', 'rs_hw', 'rs_out_size')
    keep = [n for n in graph.node if n.output[0] in ours]
    used = {i for n in keep for i in n.input}
    inits = [t for t in graph.initializer if t.name in used]
    net = helper.make_graph(
        keep, 'resize_only',
        [graph.input[0],
         helper.make_tensor_value_info('net_labels', TensorProto.UINT8, [1, 'h', 'w']),
         helper.make_tensor_value_info('net_conf', TensorProto.FLOAT, [1, 'h', 'w'])],
        [helper.make_tensor_value_info('net_image', TensorProto.UINT8, [1, 'h', 'w', 3]),
         *graph.output], inits)
    out = helper.make_model(net, opset_imports=model.opset_import)
    out.ir_version = model.ir_version
    return out


def main() -> int:
    """Time both placements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--model', help='format-2 .onnx with a static input size')
    source.add_argument('--student', default='pidnet_s',
                        help='registered network to export with random weights (default '
                        'pidnet_s)')
    parser.add_argument('--input-size', type=image_size, default=(512, 1024),
                        metavar=SIZE_METAVAR, help=f'for --student: {SIZE_HELP}')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=2, help='ONNX Runtime intra-op threads')
    parser.add_argument('--sizes', nargs='+', default=['1920x1080', '2048x1024'],
                        help='frame sizes WxH')
    args = parser.parse_args()
    import onnxruntime as ort

    args.sizes = [parse_size(size) for size in args.sizes]  # before minutes of export
    if args.model is not None and not Path(args.model).is_file():
        parser.error(f'--model {args.model}: no such file')
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            args.model = str(export_student(args.student, Path(tmp) / f'{args.student}.onnx',
                                            args.input_size))
        return measure(args, ort)


def measure(args: argparse.Namespace, ort) -> int:
    """Time both placements on every frame size and print the table."""

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    backend = create_backend(args.model, threads=args.threads)
    net_size = backend.metadata.input_size
    model = onnx.load(args.model)
    graph = ort.InferenceSession(with_resize_in_graph(model).SerializeToString(), options,
                                 providers=['CPUExecutionProvider'])
    resizes = ort.InferenceSession(resize_only(model).SerializeToString(), options,
                                   providers=['CPUExecutionProvider'])

    def node_resize(frame, net_labels, net_conf):
        resize_to_network(frame, net_size)
        return resize_outputs(net_labels, net_conf, frame.shape[:2])

    def graph_resize(frame, net_labels, net_conf):
        return resizes.run(['labels', 'confidence'], {
            'image': frame[None], 'net_labels': net_labels[None], 'net_conf': net_conf[None]})

    def in_node(frame, *_):
        net = resize_to_network(frame, net_size)
        labels, confidence = backend.infer(np.ascontiguousarray(net)[None])
        return resize_outputs(labels[0], confidence[0], frame.shape[:2])

    def in_graph(frame, *_):
        labels, confidence = graph.run(['labels', 'confidence'], {'image': frame[None]})
        return labels[0], confidence[0]

    print(f'network {net_size[1]}x{net_size[0]}, ONNX Runtime CPU, {args.threads} threads, '
          f'median of {args.repeats} interleaved runs (ms)\n')
    print('| frame (WxH) | resizes: node | resizes: graph | frame to outputs: node | '
          'frame to outputs: graph | labels equal |')
    print('|---|---|---|---|---|---|')
    for width, height in args.sizes:
        rng = np.random.default_rng(0)
        coarse = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), np.uint8)
        frame = np.ascontiguousarray(coarse.repeat(32, 0).repeat(32, 1)[:height, :width])
        labels, confidence = backend.infer(resize_to_network(frame, net_size)[None])
        inputs = (frame, labels[0], confidence[0])
        fns = (node_resize, graph_resize, in_node, in_graph)
        times = {fn: [] for fn in fns}
        for fn in fns:
            fn(*inputs)  # warm-up
        for _ in range(args.repeats):
            for fn in fns:
                start = time.perf_counter()
                fn(*inputs)
                times[fn].append((time.perf_counter() - start) * 1e3)
        med = [statistics.median(times[fn]) for fn in fns]
        equal = float(np.mean(in_node(frame)[0] == in_graph(frame)[0]))
        print(f'| {width}x{height} | {med[0]:.1f} | {med[1]:.1f} | {med[2]:.1f} | {med[3]:.1f} | '
              f'{100 * equal:.2f} % |', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
