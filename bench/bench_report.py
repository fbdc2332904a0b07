#!/usr/bin/env python3
"""bench_report.py - speed and memory of `stageprof report` on a large trace.

    python3 bench/bench_report.py [--stageprof PATH] [--dir DIR]
                                  [--size-mb N] [--seed N] [--reps N]
                                  [--skip-baselines] [--jq-stream] [--perf]

    make bench-report          # build/stageprof, 1 GiB, baselines: minutes
    python3 bench/bench_report.py --size-mb 64 --skip-baselines
                               # smoke run: seconds once the trace exists

What it measures: wall time, CPU time and peak resident set of reading one
generated PyTorch-profiler (Kineto) trace and printing its full per-stage
report with exact percentiles (`stageprof report --format=json`), beside
what a user would otherwise run on the same file, in the same run:

    cat FILE > /dev/null        the floor: reading the page cache
    stageprof report FILE       the full report, JSON output
    stageprof report FILE.gz    the same trace gzip-compressed
    gzip -dc FILE.gz            decompressing alone, with GNU gzip (whose
                                inflate is slower than zlib's, which
                                stageprof uses)
    python3 json.load           the whole document, then count and total
                                duration per name (collections.defaultdict)
    jq                          the same aggregation in one jq program:
                                reduce over .traceEvents[] (whole document
                                in memory), or with --jq-stream the
                                --stream/fromstream form (one event at a
                                time, much slower)

Each tool is a child started through GNU time (/usr/bin/time), which
reports the tool's peak RSS and CPU time; the wall time is taken around
it. (A child forked straight from this script would carry the script's
own resident set in its ru_maxrss: Linux keeps the high-water mark of the
memory a process leaves at exec.) The file is read from the page cache:
the script reads it once before every run. stageprof, cat and gzip run
--reps times; the fastest run and the largest peak RSS are shown. The two
baselines run once (over a minute and several GiB each for 1 GiB). MB/s
is 10^6 bytes of uncompressed JSON per second, also for the gzip rows.
"others" is how many CPUs other processes used during the run (the
machine's busy time in /proc/stat less the tool's own CPU time, over the
wall time; shown for runs of 0.25 s or more): above about 0.1 the machine
was not quiet. --perf samples one more stageprof run with `perf record -e
cpu-clock` and prints the top symbols.

Targets, printed as "met" or "MISSED" with the distance: the report at
>= 1 GB/s (1000 MB/s) on one core, and peak RSS <= 5 % of the file size.

Correctness, checked in passing: per event name (summed over categories),
stageprof's count and total (`total_us`, exact to the nanosecond) must
equal the Python aggregation (durations summed as integer nanoseconds);
the script prints that they agree, or fails with exit status 1. jq's counts
must agree too; its totals are sums of doubles and are compared to within
one nanosecond per slice. stageprof must also have read every event
generated and report every stage's percentiles as exact (beyond its
default --exact-limit the script passes a larger one).

The trace: object form as torch 2.x writes it (two-space indentation, the
profiler's key order and spacing, `deviceProperties` and
`distributedInfo`), one training process with a ResNet-like model under
DistributedDataParallel. Its CPU threads (main, autograd, pin-memory)
carry properly nested `cpu_op` slices with `Input Dims` / `Input type`
arguments, `user_annotation` spans (`ProfilerStep#N`, the forward, the
optimizer) and `fwdbwd` flows; the runtime calls (`cuda_runtime`) come
with their GPU work on two streams (`kernel`, `gpu_memcpy`, `gpu_memset`,
`gpu_user_annotation`), linked by `ac2g` flows; `M` process and thread
names and two `i` instants close the list. Times are microseconds with
nanosecond digits (`"ts": 1712195495519689.047`). As in Kineto's output,
each CPU thread's events come in one block, then the GPU events with their
runtime calls, then the metadata. Generation is seeded and deterministic;
the file goes to --dir (default /tmp) with the parameters in its name and
is reused when it exists with the same parameters (and a .meta.json beside
it holding its counts); the .gz copy is made once as well.

Exit status: 0 done (targets are reported, not asserted), 1 a tool failed
or the answers disagree, 2 bad usage. Python 3 standard library only.
"""

import argparse
import decimal
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

GENERATOR_VERSION = 2
MIB = 1 << 20
TARGET_MBPS = 1000.0
TARGET_RSS_SHARE = 0.05
MIN_OTHERS_WALL = 0.25
EXACT_LIMIT_DEFAULT = 8000000   # stageprof report's --exact-limit default

# --------------------------------------------------------------------------
# Trace generator
# --------------------------------------------------------------------------

PROC_NAME = "penv#native-main#platform-runtime#python#py_version_3_10"
ELEMENTWISE = ("void at::native::vectorized_elementwise_kernel<4, "
               "at::native::{f}<float>, at::detail::Array<char*, {n}> >"
               "(int, at::native::{f}<float>, at::detail::Array<char*, {n}>)")


def ts_text(ns):
    """Microseconds with three decimals, exact: 1712195495519689047 ns ->
    1712195495519689.047."""
    return "%d.%03d" % divmod(ns, 1000)


def x_text(cat, name, pid, tid, ts, dur, args):
    """A complete event ("ph": "X") as the profiler lays it out; name is
    JSON text already."""
    return ('  {\n    "ph": "X", "cat": "%s", "name": %s, "pid": %d, '
            '"tid": %d,\n    "ts": %s, "dur": %s,\n    "args": {\n'
            '      %s\n    }\n  },\n'
            % (cat, name, pid, tid, ts_text(ts), ts_text(dur), args))


class Op:
    """A cpu_op (or user_annotation) slice and the work it contains."""

    def __init__(self, name, children=(), dims=None, types=None,
                 cat="cpu_op", seq=False, self_us=(1.0, 4.0),
                 gpu_annotation=False):
        self.name = json.dumps(name)
        self.children = list(children)
        self.cat = cat
        self.seq = seq                # has an autograd sequence number
        self.self_us = self_us        # time outside children, uniform range
        self.gpu_annotation = gpu_annotation
        if dims is None:
            self.shape_args = ""
        else:
            self.shape_args = ', "Input Dims": %s, "Input type": %s' % (
                json.dumps(dims), json.dumps(types))


class Launch:
    """cudaLaunchKernel and the kernel it queues on a stream."""

    def __init__(self, kernel, grid, block, kernel_us, stream=7,
                 regs=32, smem=0):
        self.name = json.dumps(kernel)
        self.grid = json.dumps(grid)
        self.block = json.dumps(block)
        self.kernel_us = kernel_us
        self.stream = stream
        self.regs = regs
        self.smem = smem
        blocks = grid[0] * grid[1] * grid[2]
        self.blocks_per_sm = blocks / 80.0
        warps = block[0] * block[1] * block[2] // 32
        self.warps_per_sm = blocks * warps / 80.0
        self.occupancy = min(100, int(self.warps_per_sm * 100 / 64) or 1)


class Copy:
    """cudaMemcpyAsync / cudaMemsetAsync and the copy or set on stream 7."""

    def __init__(self, name, nbytes, cbid, runtime):
        self.name = json.dumps(name)
        self.nbytes = nbytes
        self.cbid = cbid
        self.runtime = json.dumps(runtime)
        self.cat = ("gpu_memset" if runtime == "cudaMemsetAsync"
                    else "gpu_memcpy")


class Runtime:
    """A runtime call with no GPU work (query, record, synchronize)."""

    def __init__(self, name, cbid, us=(1.0, 4.0), sync=False):
        self.name = json.dumps(name)
        self.cbid = cbid
        self.us = us
        self.sync = sync              # lasts until stream 7 is idle


def elementwise(f, n, kernel_us):
    return Launch(ELEMENTWISE.format(f=f, n=n), [2048, 1, 1], [128, 1, 1],
                  kernel_us, regs=16)


def conv_layer(cin, cout, hw, k):
    x = [32, cin, hw, hw]
    w = [cout, cin, k, k]
    dims = [x, w, [], [], [], [], [], [], []]
    types = ["float", "float", "", "ScalarList", "ScalarList", "ScalarList",
             "Scalar", "ScalarList", "Scalar"]
    us = (40.0 + cin * cout * k * k / 2000.0) * (1.0 if hw < 56 else 1.6)
    kernel = Launch(
        "void cudnn::cnn::conv2d_grouped_direct_kernel<false, true, false, "
        "false, 0, 0, int, float, float, float, float, float, float>"
        "(cudnn::cnn::GroupedDirectFpropParams, float const*, float const*, "
        "float*, float, float*, float const*, float const*, float)",
        [hw * hw // 8 or 1, cout // 32 or 1, 1], [256, 1, 1], (us, us * 1.3),
        regs=64, smem=24576)
    cudnn = Op("aten::cudnn_convolution", [
        Op("aten::empty", dims=[[4], [], [], [], [], []],
           types=["ScalarList", "Scalar", "", "", "", ""], self_us=(2.0, 6.0)),
        Runtime("cudaStreamIsCapturing", 317, (1.0, 3.0)),
        Launch("void cask_cudnn_infer::computeOffsetsKernel<false, false>"
               "(cask_cudnn_infer::ComputeOffsetsParams)", [50, 1, 1],
               [256, 1, 1], (1.8, 2.4), regs=16),
        kernel,
    ], dims=dims, types=types, self_us=(10.0, 30.0))
    conv = Op("aten::conv2d", [Op("aten::convolution", [
        Op("aten::_convolution", [cudnn], dims=dims, types=types)],
        dims=dims, types=types)], dims=dims, types=types, seq=True)
    conv.backward = ("ConvolutionBackward0", [
        Op("aten::convolution_backward", [
            Op("aten::empty", self_us=(2.0, 5.0)),
            Op("aten::empty", self_us=(2.0, 5.0)),
            Launch("void cudnn::cnn::wgrad_alg0_engine<float, 128, 6, 7, 3, "
                   "3, 5, false, 512>(int, int, int, float const*, int, "
                   "float*, float const*, kernel_grad_params, unsigned long "
                   "long, int, float, int, int, int, int)",
                   [cout // 8 or 1, 4, 1],
                   [512, 1, 1], (us * 1.2, us * 1.6), regs=80, smem=32768),
            Launch("sm80_xmma_dgrad_implicit_gemm_indexed_tf32f32_tf32f32_f32_"
                   "nhwckrsc_nchw_tilesize128x128x16_stage4_warpsize2x2x1_"
                   "g1_tensor16x8x8_kernel", [hw * hw // 16 or 1, 2, 1],
                   [128, 1, 1], (us, us * 1.4), regs=168, smem=65536),
        ], dims=[[32, cout, hw, hw], x, w, [], [], [], [], [], [], [], []],
            types=["float"] * 3 + [""] * 8, self_us=(20.0, 40.0))], True)
    return conv


def bn_layer(c, hw):
    dims = [[32, c, hw, hw], [c], [c], [c], [c], [], [], [], []]
    types = ["float"] * 5 + ["Scalar", "Scalar", "Scalar", "Scalar"]
    us = 8.0 + c * hw * hw / 40000.0
    impl = Op("aten::cudnn_batch_norm", [
        Op("aten::empty_like", [Op("aten::empty_strided")]),
        Op("aten::empty"), Op("aten::empty"),
        Launch("void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, "
               "true, 1, true>(cudnnTensorStruct, float const*, "
               "cudnnTensorStruct, float*, float const*, float const*, float, "
               "float, float*, float*, float*, float*, float, float)",
               [c, 1, 1], [512, 1, 1], (us, us * 1.2), regs=40, smem=4096),
    ], dims=dims[:8], types=types[:8], self_us=(8.0, 16.0))
    bn = Op("aten::batch_norm", [Op("aten::_batch_norm_impl_index", [impl],
                                    dims=dims, types=types)],
            dims=dims, types=types, seq=True)
    bn.backward = ("CudnnBatchNormBackward0", [
        Op("aten::cudnn_batch_norm_backward", [
            Op("aten::empty_like", [Op("aten::empty_strided")]),
            Op("aten::empty"), Op("aten::empty"),
            Launch("void cudnn::bn_bw_1C11_kernel_new<float, float, float2, "
                   "512, true, 1>(float, float, float, float, "
                   "cudnnTensorStruct, float const*, cudnnTensorStruct, "
                   "float const*, cudnnTensorStruct, float*, float const*, "
                   "float*, float*, float const*, float const*, float)",
                   [c, 1, 1], [512, 1, 1], (us * 1.5, us * 2.0), regs=48,
                   smem=4096),
        ], dims=[[32, c, hw, hw]] * 2 + [[c]] * 5 + [[], []],
            types=["float"] * 7 + ["Scalar", ""], self_us=(10.0, 20.0))], True)
    return bn


def relu_layer(c, hw):
    dims = [[32, c, hw, hw]]
    us = 3.0 + c * hw * hw / 80000.0
    relu = Op("aten::relu_", [Op("aten::clamp_min_", [
        elementwise("(anonymous namespace)::launch_clamp_scalar"
                    "(at::TensorIteratorBase&, c10::Scalar, c10::Scalar, "
                    "at::native::detail::ClampLimits)::{lambda()#1}::"
                    "operator() const::{lambda()#7}::operator() const::"
                    "{lambda(float)#1}",
                    2, (us, us * 1.2))],
        dims=dims + [[]], types=["float", "Scalar"])],
        dims=dims, types=["float"], seq=True)
    relu.backward = ("ThresholdBackward0", [
        Op("aten::threshold_backward", [
            Op("aten::empty_like", [Op("aten::empty_strided")]),
            elementwise("BinaryFunctor<float, float, float, "
                        "at::native::binary_internal::"
                        "ThresholdBackwardFunctor",
                        3, (us * 1.3, us * 1.6))],
            dims=dims * 2 + [[]], types=["float", "float", "Scalar"])], False)
    return relu


def add_layer(c, hw):
    dims = [[32, c, hw, hw], [32, c, hw, hw], []]
    us = 4.0 + c * hw * hw / 60000.0
    add = Op("aten::add_", [
        elementwise("CUDAFunctor_add<float>", 3, (us, us * 1.2))],
        dims=dims, types=["float", "float", "Scalar"], seq=True)
    add.backward = ("AddBackward0", [], False)
    return add


def accumulate_grad():
    return Op("autograd::engine::evaluate_function: "
              "torch::autograd::AccumulateGrad", [
                  Op("torch::autograd::AccumulateGrad", [
                      Op("aten::detach", [Op("detach", self_us=(0.5, 1.5))],
                         self_us=(1.0, 2.5))], self_us=(2.0, 5.0))])


def build_model():
    """A ResNet-like stack: stem, bottleneck blocks, pooling, classifier."""
    layers = [conv_layer(3, 64, 112, 7), bn_layer(64, 112),
              relu_layer(64, 112)]
    plan = [(64, 256, 56, 3), (128, 512, 28, 4), (256, 1024, 14, 6),
            (512, 2048, 7, 3)]
    cin = 64
    for mid, out, hw, blocks in plan:
        for _ in range(blocks):
            layers += [conv_layer(cin, mid, hw, 1), bn_layer(mid, hw),
                       relu_layer(mid, hw),
                       conv_layer(mid, mid, hw, 3), bn_layer(mid, hw),
                       relu_layer(mid, hw),
                       conv_layer(mid, out, hw, 1), bn_layer(out, hw),
                       add_layer(out, hw), relu_layer(out, hw)]
            cin = out
    pool = Op("aten::adaptive_avg_pool2d", [Op("aten::mean", [
        Op("aten::empty", self_us=(2.0, 4.0)),
        Launch("void at::native::reduce_kernel<512, 1, at::native::ReduceOp"
               "<float, at::native::MeanOps<float, float, float, float>, "
               "unsigned int, float, 4> >(at::native::ReduceOp<float, "
               "at::native::MeanOps<float, float, float, float>, unsigned "
               "int, float, 4>)", [2048, 1, 1], [32, 16, 1], (6.0, 9.0),
               regs=32)], dims=[[32, 2048, 7, 7], [2], [], []],
        types=["float", "ScalarList", "Scalar", ""])],
        dims=[[32, 2048, 7, 7], [2]], types=["float", "ScalarList"], seq=True)
    pool.backward = ("MeanBackward1", [Op("aten::expand", [
        Op("aten::as_strided", self_us=(1.0, 2.0))]), Op("aten::div", [
            elementwise("BinaryFunctor<float, float, float, "
                        "at::native::binary_internal::DivFunctor", 3,
                        (5.0, 8.0))])], False)
    fc = Op("aten::linear", [
        Op("aten::t", [Op("aten::transpose", [
            Op("aten::as_strided", self_us=(1.0, 2.0))])]),
        Op("aten::addmm", [
            Runtime("cudaStreamGetPriority", 203, (0.5, 1.5)),
            Runtime("cudaDeviceGetStreamPriorityRange", 205, (0.5, 1.5)),
            Launch("ampere_sgemm_128x64_tn", [8, 1, 1], [128, 1, 1],
                   (12.0, 16.0), regs=122, smem=12544)],
            dims=[[1000], [32, 2048], [2048, 1000], [], []],
            types=["float", "float", "float", "Scalar", "Scalar"],
            self_us=(8.0, 14.0))],
        dims=[[32, 2048], [1000, 2048], [1000]],
        types=["float", "float", "float"], seq=True)
    fc.backward = ("AddmmBackward0", [
        Op("aten::t", [Op("aten::transpose", [Op("aten::as_strided")])]),
        Op("aten::mm", [Launch("ampere_sgemm_64x32_sliced1x4_nn", [32, 1, 1],
                               [128, 1, 1], (10.0, 14.0), regs=86)],
           dims=[[32, 1000], [1000, 2048]], types=["float", "float"]),
        Op("aten::mm", [Launch("ampere_sgemm_128x64_nt", [16, 1, 1],
                               [128, 1, 1], (11.0, 15.0), regs=122)],
           dims=[[1000, 32], [32, 2048]], types=["float", "float"])], True)
    layers += [pool, Op("aten::flatten", [Op("aten::view")],
                        dims=[[32, 2048, 1, 1], [], []],
                        types=["float", "Scalar", "Scalar"]), fc]
    return layers


def loss_ops():
    log_softmax = Op("aten::log_softmax", [Op("aten::_log_softmax", [
        Launch("void at::native::(anonymous namespace)::cunn_SoftMaxForward"
               "<4, float, float, float, at::native::(anonymous namespace)::"
               "LogSoftMaxForwardEpilogue>(float*, float const*, int)",
               [32, 1, 1], [256, 1, 1], (4.0, 6.0), regs=40)],
        dims=[[32, 1000], [], []], types=["float", "Scalar", "Scalar"])],
        dims=[[32, 1000], [], []], types=["float", "Scalar", ""], seq=True)
    log_softmax.backward = ("LogSoftmaxBackward0", [
        Op("aten::_log_softmax_backward_data", [Launch(
            "void at::native::(anonymous namespace)::cunn_SoftMaxBackward"
            "<4, float, float, float, at::native::(anonymous namespace)::"
            "LogSoftMaxBackwardEpilogue>(float*, float const*, float const*, "
            "int)", [32, 1, 1], [256, 1, 1], (4.0, 6.0), regs=38)],
            dims=[[32, 1000], [32, 1000], [], []],
            types=["float", "float", "Scalar", "Scalar"])], False)
    nll = Op("aten::nll_loss_nd", [Op("aten::nll_loss", [
        Op("aten::nll_loss_forward", [
            Op("aten::empty"), Op("aten::empty"),
            Copy("Memset (Device)", 4, 51, "cudaMemsetAsync"),
            Launch("void at::native::(anonymous namespace)::"
                   "nll_loss_forward_reduce_cuda_kernel_2d<float, float, long>"
                   "(float*, float*, float const*, long const*, float const*, "
                   "bool, long, long, long, long)", [1, 1, 1], [32, 1, 1],
                   (5.0, 7.0), regs=30)],
            dims=[[32, 1000], [32], [], [], []],
            types=["float", "long int", "", "Scalar", "Scalar"])],
        dims=[[32, 1000], [32], [], [], []],
        types=["float", "long int", "", "Scalar", "Scalar"])],
        dims=[[32, 1000], [32], [], [], []],
        types=["float", "long int", "", "Scalar", "Scalar"], seq=True)
    nll.backward = ("NllLossBackward0", [
        Op("aten::nll_loss_backward", [
            Op("aten::zeros_like", [Op("aten::empty_like"), Op("aten::zero_", [
                Op("aten::fill_", [elementwise("FillFunctor", 1,
                                               (2.0, 3.0))])])]),
            Launch("void at::native::(anonymous namespace)::"
                   "nll_loss_backward_reduce_cuda_kernel_2d<float, long>"
                   "(float*, float const*, long const*, float const*, "
                   "float const*, bool, int, int, long, long)", [1, 1, 1],
                   [32, 1, 1], (3.0, 5.0), regs=26)],
            dims=[[], [32, 1000], [32], [], [], [], []],
            types=["float", "float", "long int", "", "Scalar", "Scalar",
                   "float"])], False)
    return [Op("aten::cross_entropy_loss", [log_softmax, nll],
               dims=[[32, 1000], [32], [], [], [], []],
               types=["float", "long int", "", "Scalar", "Scalar", "Scalar"])]


def input_ops():
    to = Op("aten::to", [Op("aten::_to_copy", [
        Op("aten::empty_strided", self_us=(3.0, 6.0)),
        Op("aten::copy_", [
            Copy("Memcpy HtoD (Pinned -> Device)", 19267584, 41,
                 "cudaMemcpyAsync")], dims=[[32, 3, 224, 224]] * 2 + [[]],
            types=["float", "float", "Scalar"])],
        dims=[[32, 3, 224, 224], [], [], [], [], [], []],
        types=["float", "Scalar", "", "", "", "Scalar", ""])],
        dims=[[32, 3, 224, 224], [], [], [], [], []],
        types=["float", "", "", "", "Scalar", "Scalar"])
    return [Op("enumerate(DataLoader)#_MultiProcessingDataLoaderIter.__next__",
               [Op("aten::empty", self_us=(1.0, 2.0))],
               cat="user_annotation", self_us=(150.0, 900.0)), to]


def optimizer_ops():
    groups = []
    for _ in range(4):
        groups.append(Op("aten::_foreach_add_", [
            Launch("void at::native::(anonymous namespace)::"
                   "multi_tensor_apply_kernel<at::native::(anonymous "
                   "namespace)::TensorListMetadata<2>, at::native::"
                   "(anonymous namespace)::BinaryOpListAlphaFunctor<float, 2, "
                   "2, 0>, std::plus<float>, float>(at::native::(anonymous "
                   "namespace)::TensorListMetadata<2>, at::native::"
                   "(anonymous namespace)::BinaryOpListAlphaFunctor<float, 2, "
                   "2, 0>, std::plus<float>, float)", [320, 1, 1],
                   [512, 1, 1], (60.0, 90.0), regs=32)],
            dims=[[], [], []], types=["TensorList", "TensorList", "Scalar"],
            self_us=(20.0, 40.0)))
    return Op("Optimizer.step#SGD.step", groups, cat="user_annotation",
              self_us=(30.0, 60.0), gpu_annotation=True)


def item_ops():
    return [Op("aten::item", [Op("aten::_local_scalar_dense", [
        Copy("Memcpy DtoH (Device -> Pageable)", 4, 41, "cudaMemcpyAsync"),
        Runtime("cudaStreamSynchronize", 131, (2.0, 4.0), sync=True)],
        dims=[[]], types=["float"])], dims=[[]], types=["float"])]


class Trace:
    """Writes the events of the generated run into per-section files."""

    def __init__(self, seed, dirname):
        self.rng = random.Random(seed)
        self.pid = 2300 + self.rng.randrange(60000)
        self.main = self.pid
        self.autograd = self.pid + 137
        self.pin = self.pid + 59
        self.start_ns = 1712195495000000000 + self.rng.randrange(10 ** 9)
        self.ext = 0
        self.corr = 134000
        self.ev_idx = 0
        self.seq = 18000
        self.stream_free = {7: 0, 20: 0}
        self.pin_free = 0
        self.open_gpu_spans = []
        self.counts = {"events": 0, "X": 0, "s": 0, "f": 0, "i": 0, "M": 0}
        self.sections = {}
        self.buffers = {}
        for key in ("autograd", "main", "pin", "gpu"):
            fd, path = tempfile.mkstemp(prefix="bench_report.%s." % key,
                                        dir=dirname)
            self.sections[key] = (path, os.fdopen(fd, "w", encoding="utf-8",
                                                  newline="\n"))
            self.buffers[key] = []
        self.bytes = 0

    # ---- formatting ------------------------------------------------------

    def put(self, key, text):
        self.buffers[key].append(text)
        self.bytes += len(text)
        self.counts["events"] += 1

    def open_slot(self, key):
        """Reserve the place of a parent slice, written once its children
        are: the file lists a thread's slices in order of start."""
        self.buffers[key].append(None)
        self.counts["events"] += 1
        self.counts["X"] += 1
        return len(self.buffers[key]) - 1

    def fill_slot(self, key, slot, cat, name, tid, ts, dur, args):
        text = x_text(cat, name, self.pid, tid, ts, dur, args)
        self.buffers[key][slot] = text
        self.bytes += len(text)

    def flush(self):
        """Write out the buffers (between steps, when no slot is open)."""
        for key, buf in self.buffers.items():
            if buf:
                self.sections[key][1].write("".join(buf))
                buf.clear()

    def x_cpu(self, key, tid, cat, name, ts, dur, args):
        self.counts["X"] += 1
        self.put(key, x_text(cat, name, self.pid, tid, ts, dur, args))

    def x_gpu(self, cat, name, stream, ts, dur, args):
        self.counts["X"] += 1
        self.put("gpu", x_text(cat, name, 0, stream, ts, dur, args))

    def flow(self, key, ph, cat, fid, pid, tid, ts):
        self.counts[ph] += 1
        end = ', "bp": "e"' if ph == "f" else ""
        self.put(key,
                 '  {\n    "ph": "%s", "id": %d, "pid": %d, "tid": %d, '
                 '"ts": %s,\n    "cat": "%s", "name": "%s"%s\n  },\n'
                 % (ph, fid, pid, tid, ts_text(ts), cat, cat, end))

    # ---- time ----------------------------------------------------------

    def us(self, lo_hi):
        lo, hi = lo_hi
        return int((lo + (hi - lo) * self.rng.random()) * 1000)

    def gap(self):
        return 150 + self.rng.randrange(900)

    # ---- GPU work --------------------------------------------------------

    def gpu_slot(self, stream, t, dur):
        start = max(t, self.stream_free[stream])
        start += self.rng.randrange(400, 1600)
        self.stream_free[stream] = start + dur
        if stream == 7:
            for span in self.open_gpu_spans:
                if span[0] is None:
                    span[0] = start
                span[1] = start + dur
        return start

    def launch(self, tid, node, t):
        dur = self.us((4.0, 9.0))
        corr = self.corr = self.corr + 1
        kdur = self.us(node.kernel_us)
        kstart = self.gpu_slot(node.stream, t + dur // 2, kdur)
        self.x_gpu("kernel", node.name, node.stream, kstart, kdur,
                   '"External id": %d,      "queued": 0, "device": 0, '
                   '"context": 1,      "stream": %d, "correlation": %d,      '
                   '"registers per thread": %d,      '
                   '"shared memory": %d,      '
                   '"blocks per SM": %.6f,      "warps per SM": %.6f,      '
                   '"grid": %s,      "block": %s,      '
                   '"est. achieved occupancy %%": %d'
                   % (self.ext, node.stream, corr, node.regs, node.smem,
                      node.blocks_per_sm, node.warps_per_sm, node.grid,
                      node.block, node.occupancy))
        self.flow("gpu", "f", "ac2g", corr, 0, node.stream, kstart)
        self.x_cpu("gpu", tid, "cuda_runtime", '"cudaLaunchKernel"', t, dur,
                   '"External id": %d,      "cbid": 211, "correlation": %d'
                   % (self.ext, corr))
        self.flow("gpu", "s", "ac2g", corr, self.pid, tid, t)
        return t + dur

    def copy(self, tid, node, t):
        dur = self.us((5.0, 12.0))
        corr = self.corr = self.corr + 1
        gdur = max(1000, node.nbytes // 12) + self.rng.randrange(500)
        gstart = self.gpu_slot(7, t + dur // 2, gdur)
        self.x_gpu(node.cat, node.name, 7, gstart, gdur,
                   '"External id": %d,      "device": 0, "context": 1,      '
                   '"stream": 7, "correlation": %d,      "bytes": %d, '
                   '"memory bandwidth (GB/s)": %r'
                   % (self.ext, corr, node.nbytes, node.nbytes / gdur))
        self.flow("gpu", "f", "ac2g", corr, 0, 7, gstart)
        self.x_cpu("gpu", tid, "cuda_runtime", node.runtime, t, dur,
                   '"External id": %d,      "cbid": %d, "correlation": %d'
                   % (self.ext, node.cbid, corr))
        self.flow("gpu", "s", "ac2g", corr, self.pid, tid, t)
        return t + dur

    def runtime(self, tid, node, t):
        dur = self.us(node.us)
        if node.sync:
            dur = max(dur, self.stream_free[7] - t + self.rng.randrange(3000))
        corr = self.corr = self.corr + 1
        self.x_cpu("gpu", tid, "cuda_runtime", node.name, t, dur,
                   '"External id": %d,      "cbid": %d, "correlation": %d'
                   % (self.ext, node.cbid, corr))
        self.flow("gpu", "f", "ac2g", corr, self.pid, tid, t)
        return t + dur

    # ---- CPU slices -------------------------------------------------------

    def next_ids(self):
        self.ext += 1
        self.ev_idx += 1
        return self.ext, self.ev_idx

    def op(self, key, tid, node, t, fwd_seq=None):
        """Emit node starting at t, parent before children, every child
        inside its parent; return its end."""
        if isinstance(node, Launch):
            return self.launch(tid, node, t)
        if isinstance(node, Copy):
            return self.copy(tid, node, t)
        if isinstance(node, Runtime):
            return self.runtime(tid, node, t)
        ext, ev_idx = self.next_ids()
        slot = self.open_slot(key)
        if node.gpu_annotation:
            span = [None, 0]
            self.open_gpu_spans.append(span)
        cur = t + self.gap()
        for child in node.children:
            cur = self.op(key, tid, child, cur) + self.gap()
        end = cur + self.us(node.self_us)
        if node.seq:
            self.seq += 1
            seq = ', "Sequence number": %d, "Fwd thread id": 0' % self.seq
        elif fwd_seq is not None:
            seq = ', "Sequence number": %d, "Fwd thread id": 1' % fwd_seq
        else:
            seq = ""
        self.fill_slot(key, slot, node.cat, node.name, tid, t, end - t,
                       '"External id": %d,"Record function id": 0%s, '
                       '"Ev Idx": %d%s' % (ext, seq, ev_idx, node.shape_args))
        if node.seq:
            self.flow(key, "s", "fwdbwd", self.seq, self.pid, tid, t)
            node.last_seq = self.seq
        if node.gpu_annotation:
            self.open_gpu_spans.remove(span)
            if span[0] is not None:
                self.x_gpu("gpu_user_annotation", node.name, 7, span[0],
                           span[1] - span[0], '"External id": %d' % ext)
        return end

    def annotation(self, name, t, body, gpu=True):
        """A user_annotation on the main thread around body(t) -> end, with
        (if gpu) its gpu_user_annotation over the stream-7 work launched
        inside; the profiler gives ProfilerStep#N none."""
        ext, ev_idx = self.next_ids()
        slot = self.open_slot("main")
        span = [None, 0]
        if gpu:
            self.open_gpu_spans.append(span)
        end = body(t + self.gap()) + self.us((3.0, 9.0))
        if gpu:
            self.open_gpu_spans.remove(span)
        self.fill_slot("main", slot, "user_annotation", name, self.main, t,
                       end - t, '"External id": %d,"Record function id": 0, '
                       '"Ev Idx": %d' % (ext, ev_idx))
        if span[0] is not None:
            self.x_gpu("gpu_user_annotation", name, 7, span[0],
                       span[1] - span[0], '"External id": %d' % ext)
        return end

    def ops(self, key, tid, nodes, t):
        for node in nodes:
            t = self.op(key, tid, node, t) + self.gap()
        return t

    def step(self, number, t, model):
        """One training iteration from t; returns when the next can start."""
        main = self.main

        def body(cur):
            cur = self.ops("main", main, model.inputs, cur)
            # The pin-memory thread prepares the next batch meanwhile.
            pin_t = max(cur, self.pin_free) + self.us((50.0, 400.0))
            for _ in range(4):
                pin_t = self.op("pin", self.pin, PIN_OP, pin_t)
                pin_t += self.us((5.0, 60.0))
            self.pin_free = pin_t
            cur = self.annotation(
                '"DistributedDataParallel.forward"', cur,
                lambda c: self.ops("main", main, model.layers, c))
            cur = self.ops("main", main, model.loss, cur)
            # backward(): the autograd thread runs the graph in reverse
            # while the main thread waits.
            bt = self.op("autograd", self.autograd, BACKWARD_SEED,
                         cur + self.us((20.0, 40.0))) + self.gap()
            for i, node in enumerate(reversed(model.with_grad)):
                bt = self.backward(node, bt) + self.gap()
                if i % 12 == 11:
                    bt = self.op("autograd", self.autograd, ALLREDUCE, bt)
                    bt += self.gap()
            bt = self.op("autograd", self.autograd, ALLREDUCE, bt)
            cur = bt + self.us((10.0, 30.0))
            cur = self.op("main", main, ZERO_GRAD, cur) + self.gap()
            cur = self.op("main", main, model.optimizer, cur) + self.gap()
            return self.ops("main", main, model.item, cur)

        end = self.annotation(json.dumps("ProfilerStep#%d" % number), t, body,
                              gpu=False)
        self.flush()
        return end + self.us((20.0, 80.0))

    def backward(self, node, t):
        """evaluate_function: XBackward0 > XBackward0 > ..., the fwdbwd
        flow's end, and AccumulateGrad for layers with parameters."""
        name, children, has_params = node.backward
        tid = self.autograd
        ext, ev_idx = self.next_ids()
        slot = self.open_slot("autograd")
        self.flow("autograd", "f", "fwdbwd", node.last_seq, self.pid, tid, t)
        fn = BACKWARD_FNS.get(name)
        if fn is None:
            fn = BACKWARD_FNS[name] = Op(name, children, self_us=(3.0, 8.0))
        end = self.op("autograd", tid, fn, t + self.gap(),
                      fwd_seq=node.last_seq) + self.us((2.0, 6.0))
        self.fill_slot("autograd", slot, "cpu_op",
                       json.dumps("autograd::engine::evaluate_function: "
                                  + name), tid, t, end - t,
                       '"External id": %d,"Record function id": 0, '
                       '"Sequence number": %d, "Fwd thread id": 1, '
                       '"Ev Idx": %d' % (ext, node.last_seq, ev_idx))
        if has_params:
            end = self.op("autograd", tid, ACCUMULATE, end + self.gap())
        return end


BACKWARD_FNS = {}
PIN_OP = Op("aten::pin_memory", [Op("aten::_pin_memory", [
    Op("aten::empty", self_us=(4.0, 9.0)),
    Op("aten::copy_", self_us=(300.0, 900.0),
       dims=[[8, 3, 224, 224], [8, 3, 224, 224], []],
       types=["float", "float", "Scalar"])],
    dims=[[8, 3, 224, 224], []], types=["float", ""])],
    dims=[[8, 3, 224, 224], []], types=["float", ""])
ZERO_GRAD = Op("Optimizer.zero_grad#SGD.zero_grad", cat="user_annotation",
               self_us=(20.0, 60.0))
BACKWARD_SEED = Op("aten::ones_like", [
    Op("aten::empty_like", [Op("aten::empty_strided")]),
    Op("aten::fill_", [elementwise("FillFunctor", 1, (1.5, 2.5))])],
    dims=[[], [], [], [], [], []],
    types=["float", "", "", "", "", ""])
ACCUMULATE = accumulate_grad()
ALLREDUCE = Op("nccl:all_reduce", [Op("record_param_comms", [
    Runtime("cudaEventRecord", 135, (1.0, 3.0)),
    Runtime("cudaStreamWaitEvent", 147, (1.0, 2.0)),
    Launch("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm*, unsigned "
           "long, ncclWork*)", [2, 1, 1], [512, 1, 1], (200.0, 900.0),
           stream=20, regs=96, smem=0),
    Runtime("cudaEventRecord", 135, (1.0, 3.0))],
    dims=[[[6400000]], [], [], [], [], [], [], [], [], []],
    types=["GenericList", "Int", "Int", "String", "String", "", "", "Int",
           "", "Int"])], cat="user_annotation", self_us=(10.0, 30.0))


def header(dev_count=8):
    devices = []
    for i in range(dev_count):
        devices.append(
            '    {\n      "id": %d, "name": "NVIDIA A100-SXM4-80GB", '
            '"totalGlobalMem": 85031714816,\n      "computeMajor": 8, '
            '"computeMinor": 0,\n      "maxThreadsPerBlock": 1024, '
            '"maxThreadsPerMultiprocessor": 2048,\n      "regsPerBlock": '
            '65536, "regsPerMultiprocessor": 65536, "warpSize": 32,\n      '
            '"sharedMemPerBlock": 49152, "sharedMemPerMultiprocessor": '
            '167936,\n      "numSms": 108, "sharedMemPerBlockOptin": 166912\n'
            '    }' % i)
    return ('{\n  "schemaVersion": 1,\n  "deviceProperties": [\n%s\n  ],\n'
            '  "distributedInfo": {"backend": "nccl", "rank": 0, '
            '"world_size": 8, "pg_count": 1, "pg_config": [{"pg_name": "0", '
            '"pg_desc": "default_pg", "backend_config": "cuda:nccl", '
            '"pg_size": 8, "ranks": [0, 1, 2, 3, 4, 5, 6, 7]}], '
            '"nccl_version": "2.20.5"},\n  "trace_id": '
            '"6E2F0C9A41B84D27A3C5D1E09F7B6A38",\n  "traceEvents": [\n'
            % ",\n".join(devices))


def metadata(tr, first_ns, last_ns):
    """M events for the process, the GPUs, the threads and streams, the
    profiler's own span and the two instants: the end of the list."""
    out = []

    def meta(name, pid, tid, key, value, ts=first_ns):
        tr.counts["M"] += 1
        tr.counts["events"] += 1
        out.append('  {\n    "name": "%s", "ph": "M", "ts": %s, "pid": %s, '
                   '"tid": %s,\n    "args": {\n      "%s": %s\n    }\n  },\n'
                   % (name, ts_text(ts), pid, tid, key, json.dumps(value)))

    for pid, label, sort in [(tr.pid, "CPU", tr.pid)] + [
            (g, "GPU %d" % g, 16777216 + g) for g in range(8)]:
        meta("process_name", pid, 0, "name", PROC_NAME)
        meta("process_labels", pid, 0, "labels", label)
        meta("process_sort_index", pid, 0, "sort_index", sort)
    for stream in (7, 20):
        meta("thread_name", 0, stream, "name", "stream %d " % stream)
        meta("thread_sort_index", 0, stream, "sort_index", stream)
    for tid, what in ((tr.main, "pt_main_thread"), (tr.autograd,
                                                     "pt_autograd_0"),
                      (tr.pin, "pt_thread_pin_memory")):
        meta("thread_name", tr.pid, tid, "name",
             "thread %d (%s)" % (tid, what))
        meta("thread_sort_index", tr.pid, tid, "sort_index", tid)
    meta("process_sort_index", '"Spans"', '"PyTorch Profiler"', "sort_index",
         536870912, ts=tr.start_ns)
    tr.counts["X"] += 1
    tr.counts["events"] += 1
    out.append('  {\n    "ph": "X", "cat": "Trace", "ts": %s, "dur": %s,\n'
               '    "pid": "Spans", "tid": "PyTorch Profiler",\n'
               '    "name": "PyTorch Profiler (0)",\n    "args": {\n'
               '      "Op count": 0\n    }\n  },\n'
               % (ts_text(tr.start_ns), ts_text(last_ns - tr.start_ns)))
    tr.counts["i"] += 2
    tr.counts["events"] += 2
    out.append('  {\n    "name": "Iteration Start: PyTorch Profiler", '
               '"ph": "i", "s": "g",\n    "pid": "Traces", "tid": "Trace '
               'PyTorch Profiler", "ts": %s\n  },\n' % ts_text(tr.start_ns))
    out.append('  {\n    "name": "Record Window End", "ph": "i", "s": "g",\n'
               '    "pid": "", "tid": "", "ts": %s\n  }\n' % ts_text(last_ns))
    return "".join(out)


class Model:
    """The work of one training step, as op trees."""

    def __init__(self):
        self.inputs = input_ops()
        self.layers = build_model()
        self.loss = loss_ops()
        self.with_grad = [n for n in self.layers + self.loss[0].children
                          if getattr(n, "backward", None)]
        self.optimizer = optimizer_ops()
        self.item = item_ops()


def generate(path, size, seed):
    """Write the trace to path (via a temporary file); return its counts."""
    dirname = os.path.dirname(path) or "."
    tr = Trace(seed, dirname)
    model = Model()
    head = header()
    first = t = tr.start_ns + 94000000
    number = 1
    tmp_files = [p for p, _ in tr.sections.values()]
    try:
        # Stop when the file (head, events, metadata of about 10 KB) has
        # reached the size asked for.
        while len(head) + tr.bytes + 10000 < size:
            t = tr.step(number, t, model)
            number += 1
        last = max(t, tr.stream_free[7], tr.stream_free[20]) + 5000
        tail = metadata(tr, first, last)
        for _, f in tr.sections.values():
            f.close()
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".",
                                   dir=dirname)
        tmp_files.append(tmp)
        with os.fdopen(fd, "wb") as out:
            out.write(head.encode())
            for key in ("autograd", "main", "pin", "gpu"):
                with open(tr.sections[key][0], "rb") as src:
                    shutil.copyfileobj(src, out, 8 * MIB)
            out.write(tail.encode())
            out.write(b'  ],\n  "traceName": '
                      b'"/tmp/libkineto_activities_%d.json",\n'
                      b'  "displayTimeUnit": "ns",\n'
                      b'  "baseTimeNanoseconds": %d\n}\n'
                      % (tr.pid, tr.start_ns // 10 ** 9 * 10 ** 9))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        for _, f in tr.sections.values():
            f.close()
        for p in tmp_files:
            if os.path.exists(p):
                os.unlink(p)
    tr.counts["steps"] = number - 1
    return tr.counts


def ensure_trace(args):
    """The trace and its .gz copy for these parameters, made if missing."""
    size = args.size_mb * MIB
    base = os.path.join(args.dir, "stageprof-bench-kineto-%dMiB-seed%d-v%d"
                        % (args.size_mb, args.seed, GENERATOR_VERSION))
    path, gz = base + ".json", base + ".json.gz"
    meta_path = base + ".meta.json"
    meta = None
    if os.path.exists(path) and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("bytes") != os.path.getsize(path):
            meta = None
    if meta is None:
        print("generating %s (%d MiB, seed %d) ..." % (path, args.size_mb,
                                                      args.seed), flush=True)
        t0 = time.perf_counter()
        counts = generate(path, size, args.seed)
        meta = dict(counts, bytes=os.path.getsize(path), seed=args.seed,
                    size_mb=args.size_mb, version=GENERATOR_VERSION)
        if os.path.exists(gz):
            os.unlink(gz)
        write_atomic(meta_path, json.dumps(meta, indent=1) + "\n")
        print("  %.1f s" % (time.perf_counter() - t0), flush=True)
    if not os.path.exists(gz):
        print("compressing %s (gzip -6) ..." % gz, flush=True)
        t0 = time.perf_counter()
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(gz) + ".",
                                   dir=args.dir)
        try:
            with open(path, "rb") as src, os.fdopen(fd, "wb") as raw, \
                    gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6,
                                  mtime=0) as dst:
                shutil.copyfileobj(src, dst, 8 * MIB)
            os.chmod(tmp, 0o644)
            os.replace(tmp, gz)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        print("  %.1f s" % (time.perf_counter() - t0), flush=True)
    return path, gz, meta


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".",
                               dir=os.path.dirname(path) or ".")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------

PY_AGG = r"""
import collections, json, sys
with open(sys.argv[1], "rb") as f:
    trace = json.load(f)
count = collections.defaultdict(int)
total = collections.defaultdict(int)
for e in trace["traceEvents"]:
    if e.get("ph") == "X" and isinstance(e.get("dur"), (int, float)):
        count[e["name"]] += 1
        total[e["name"]] += round(e["dur"] * 1000)
json.dump({k: [count[k], total[k]] for k in count}, sys.stdout)
"""

JQ_REDUCE = ('reduce (.traceEvents[] | select(.ph == "X")) as $e ({}; '
             '.[$e.name] |= {n: ((.n // 0) + 1), total: ((.total // 0) + '
             '$e.dur)})')
JQ_STREAM = ('reduce (fromstream(2 | truncate_stream(inputs | '
             'select(.[0][0] == "traceEvents"))) | select(.ph == "X")) as $e '
             '({}; .[$e.name] |= {n: ((.n // 0) + 1), total: ((.total // 0) '
             '+ $e.dur)})')


def cpu_busy_seconds():
    """Busy time of all CPUs so far (user, nice, system, irq, softirq)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    ticks = sum(int(fields[i]) for i in (1, 2, 3, 6, 7))
    return ticks / os.sysconf("SC_CLK_TCK")


GNU_TIME = "/usr/bin/time"


def run(argv, stdout_path=None):
    """Run argv as a child; return wall s, CPU s, peak RSS bytes, others.

    The peak RSS comes from GNU time, which forks the tool from its own
    small process: a child forked from this Python process would carry
    Python's resident set in its ru_maxrss (Linux records the high-water
    mark of the memory it leaves at exec). Without /usr/bin/time the figure
    comes from wait4 and includes that floor (a warning says so)."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err = tempfile.TemporaryFile()
    rusage_file = None
    if os.access(GNU_TIME, os.X_OK):
        fd, rusage_file = tempfile.mkstemp(prefix="bench_report.time.")
        os.close(fd)
        argv = [GNU_TIME, "-f", "%M %U %S", "-o", rusage_file] + argv
    try:
        busy0 = cpu_busy_seconds()
        t0 = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, ru = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
        busy = cpu_busy_seconds() - busy0
        child.returncode = os.waitstatus_to_exitcode(status)
        if rusage_file:
            with open(rusage_file) as f:
                lines = f.read().split("\n")
            fields = [ln for ln in lines if ln.strip()][-1].split()
            rss = int(fields[0]) * 1024
            cpu = float(fields[1]) + float(fields[2])
        else:
            rss = ru.ru_maxrss * 1024
            cpu = ru.ru_utime + ru.ru_stime
    finally:
        if stdout_path:
            out.close()
        if rusage_file:
            os.unlink(rusage_file)
    if child.returncode != 0:
        err.seek(0)
        sys.stderr.write(err.read().decode(errors="replace")[-2000:])
        raise SystemExit("bench_report: %s exited with %d"
                         % (" ".join(argv[:2]), child.returncode))
    return {"wall": wall, "cpu": cpu, "rss": rss,
            "others": max(0.0, (busy - cpu) / wall) if wall > 0 else 0.0}


def best_of(reps, argv, warm, stdout_path=None):
    runs = []
    for _ in range(reps):
        if warm:
            warm_cache(warm)
        runs.append(run(argv, stdout_path))
    best = min(runs, key=lambda r: r["wall"])
    best = dict(best, rss=max(r["rss"] for r in runs),
                walls=[r["wall"] for r in runs])
    return best


def warm_cache(path):
    with open(path, "rb") as f:
        while f.read(8 * MIB):
            pass


# --------------------------------------------------------------------------
# Correctness
# --------------------------------------------------------------------------

def stageprof_by_name(path):
    """Count and total ns per name from stageprof's JSON, the number of
    events it read and the number of stages whose percentiles are not
    exact."""
    with open(path) as f:
        report = json.load(f, parse_float=decimal.Decimal)
    agg = {}
    inexact = sum(1 for st in report["stages"] if not st.get("exact", True))
    for st in report["stages"]:
        if st["async"]:
            continue
        n, total = agg.get(st["name"], (0, 0))
        agg[st["name"]] = (n + st["count"],
                           total + int(st["total_us"] * 1000))
    return agg, report["trace"]["events"], inexact, len(report["stages"])


def check(stageprof_json, python_json, jq_json):
    sp, events, inexact, nstages = stageprof_by_name(stageprof_json)
    ok = inexact == 0
    if ok:
        print("check: stageprof's percentiles are exact for all %d stages"
              % nstages)
    else:
        print("check: %d stages have percentiles from the sketch, not exact"
              % inexact)
    if python_json:
        with open(python_json) as f:
            py = {k: tuple(v) for k, v in json.load(f).items()}
        if py == sp:
            print("check: stageprof and Python json agree on count and total "
                  "(to the ns) for all %d names, %d slices"
                  % (len(sp), sum(v[0] for v in sp.values())))
        else:
            ok = False
            bad = sorted(set(py) ^ set(sp)) or sorted(
                k for k in py if py[k] != sp[k])
            for k in bad[:10]:
                print("check: stageprof and Python DISAGREE on %r: %s, %s"
                      % (k, sp.get(k), py.get(k)))
    if jq_json:
        with open(jq_json) as f:
            jq = json.load(f)
        other_counts = set(jq) ^ set(sp) | {
            k for k, v in jq.items() if k in sp and v["n"] != sp[k][0]}
        far = [k for k, v in jq.items()
               if k in sp and abs(v["total"] * 1000 - sp[k][1]) > sp[k][0]]
        if not other_counts and not far:
            print("check: jq agrees on the counts, and on the totals to "
                  "within 1 ns per slice (it sums doubles)")
        else:
            ok = False
            print("check: jq DISAGREES: %d names with other counts, %d with "
                  "other totals" % (len(other_counts), len(far)))
    return ok, events


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def verdict(ok):
    return "met" if ok else "MISSED"


def main():
    ap = argparse.ArgumentParser(
        description="Speed and memory of `stageprof report` on a generated "
                    "Kineto trace, beside cat, gzip, Python json and jq.")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--stageprof", default=os.path.join(root, "build",
                                                        "stageprof"),
                    help="the program (default: build/stageprof)")
    ap.add_argument("--dir", default="/tmp",
                    help="where the trace is written and kept (default /tmp)")
    ap.add_argument("--size-mb", type=int, default=1024,
                    help="trace size in MiB (default 1024)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3,
                    help="runs of stageprof, cat and gzip; fastest kept")
    ap.add_argument("--skip-baselines", action="store_true",
                    help="no Python json and jq (they take minutes and GiB)")
    ap.add_argument("--jq-stream", action="store_true",
                    help="jq --stream (low memory, slower) instead of reduce")
    ap.add_argument("--perf", action="store_true",
                    help="also sample one stageprof run with perf record and "
                         "print the top symbols")
    args = ap.parse_args()
    if args.size_mb < 1 or args.reps < 1:
        ap.error("--size-mb and --reps take whole numbers from 1")
    if not (os.path.isfile(args.stageprof) and
            os.access(args.stageprof, os.X_OK)):
        ap.error("%s: no such program (make build, or --stageprof PATH)"
                 % args.stageprof)
    os.makedirs(args.dir, exist_ok=True)

    path, gz, meta = ensure_trace(args)
    size = meta["bytes"]
    gz_size = os.path.getsize(gz)
    work = tempfile.mkdtemp(prefix="bench_report.", dir=args.dir)
    try:
        return measure(args, path, gz, meta, size, gz_size, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def measure(args, path, gz, meta, size, gz_size, work):
    sp = os.path.abspath(args.stageprof)
    # Exact percentiles for every slice, also beyond the default limit.
    report_argv = [sp, "report", "--format=json"]
    if meta["X"] > EXACT_LIMIT_DEFAULT:
        report_argv.append("--exact-limit=%d" % meta["X"])
    print("bench_report: %s, %d CPUs, load average %.2f %.2f %.2f"
          % ((cpu_model(), os.cpu_count()) + os.getloadavg()))
    if not os.access(GNU_TIME, os.X_OK):
        print("warning: no %s (Debian package time): peak RSS from wait4, "
              "which includes this script's own resident set" % GNU_TIME)
    print("trace: %s" % path)
    print("  %d bytes (%.1f MB), %d events: %d X slices, %d flow ends, "
          "%d M, %d i; %d steps" % (size, size / 1e6, meta["events"],
                                     meta["X"], meta["s"] + meta["f"],
                                     meta["M"], meta["i"], meta["steps"]))
    print("  gzip copy %d bytes (%.1f MB, %.1f %%)"
          % (gz_size, gz_size / 1e6, 100.0 * gz_size / size))
    warm_cache(path)

    rows = []
    sp_out = os.path.join(work, "stageprof.json")
    rows.append(("cat (page cache floor)",
                 best_of(args.reps, ["cat", path], path)))
    rows.append(("stageprof report",
                 best_of(args.reps, report_argv + [path], path, sp_out)))
    sp_row = rows[-1][1]
    rows.append(("gzip -dc > /dev/null",
                 best_of(args.reps, ["gzip", "-dc", gz], gz)))
    rows.append(("stageprof report, .gz",
                 best_of(args.reps, report_argv + [gz], gz,
                         os.path.join(work, "stageprof-gz.json"))))
    py_out = jq_out = None
    if not args.skip_baselines:
        py_out = os.path.join(work, "python.json")
        print("running Python json (one run) ...", flush=True)
        rows.append(("python3 json.load + defaultdict",
                     best_of(1, [sys.executable, "-c", PY_AGG, path], path,
                             py_out)))
        jq_out = os.path.join(work, "jq.json")
        prog = JQ_STREAM if args.jq_stream else JQ_REDUCE
        jq_argv = (["jq", "-c", "-n", "--stream", prog, path]
                   if args.jq_stream else ["jq", "-c", prog, path])
        print("running jq%s (one run) ..." % (" --stream" if args.jq_stream
                                              else ""), flush=True)
        rows.append(("jq --stream" if args.jq_stream else "jq (reduce)",
                     best_of(1, jq_argv, path, jq_out)))

    print()
    print("%-32s %9s %9s %11s %9s %11s %8s %7s"
          % ("tool", "seconds", "MB/s", "peak RSS", "RSS/file",
             "x stageprof", "cpu s", "others"))
    for name, r in rows:
        # /proc/stat counts in ticks of 10 ms: too coarse for short runs.
        others = ("%7.2f" % r["others"] if r["wall"] >= MIN_OTHERS_WALL
                  else "%7s" % "-")
        print("%-32s %9.3f %9.0f %8.1f MB %7.2f %% %11.2f %8.2f %s"
              % (name, r["wall"], size / 1e6 / r["wall"], r["rss"] / 1e6,
                 100.0 * r["rss"] / size, r["wall"] / sp_row["wall"],
                 r["cpu"], others))
    print("(cat, gzip, stageprof: fastest of %d runs, largest peak RSS; "
          "stageprof's runs: %s s.\n MB/s of uncompressed JSON; x stageprof: "
          "seconds / stageprof's; others: CPUs used by\n other processes "
          "during the run, shown for runs of %.2f s or more)"
          % (args.reps, ", ".join("%.3f" % w for w in sp_row["walls"]),
             MIN_OTHERS_WALL))
    print()

    ok, events = check(sp_out, py_out, jq_out)
    if events == meta["events"]:
        print("check: stageprof read all %d events of the trace" % events)
    else:
        print("check: stageprof read %d events, the trace has %d"
              % (events, meta["events"]))
        ok = False
    print()
    mbps = size / 1e6 / sp_row["wall"]
    print("target: >= %.0f MB/s on one core: %s, %.0f MB/s (%.2f x the "
          "target; %.3f s for %.3f s allowed)"
          % (TARGET_MBPS, verdict(mbps >= TARGET_MBPS), mbps,
             mbps / TARGET_MBPS, sp_row["wall"], size / 1e6 / TARGET_MBPS))
    share = sp_row["rss"] / size
    print("target: peak RSS <= %.0f %% of the file: %s, %.2f %% (%.1f MB for "
          "%.1f MB allowed, %.2f x)"
          % (100 * TARGET_RSS_SHARE, verdict(share <= TARGET_RSS_SHARE),
             100 * share, sp_row["rss"] / 1e6, size * TARGET_RSS_SHARE / 1e6,
             share / TARGET_RSS_SHARE))
    others = max([r["others"] for _, r in rows
                  if r["wall"] >= MIN_OTHERS_WALL] or [0.0])
    if others > 0.1:
        print("note: other processes used up to %.2f CPUs during these runs"
              % others)

    if args.perf:
        perf_profile(report_argv + [path], path, work)
    return 0 if ok else 1


def perf_profile(argv, path, work):
    data = os.path.join(work, "perf.data")
    warm_cache(path)
    print()
    print("perf record -e cpu-clock -F 4999: stageprof %s"
          % " ".join(argv[1:-1]))
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999",
                    "-o", data, "--"] + argv,
                   stdout=subprocess.DEVNULL, check=True)
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio",
                          "--no-children", "--fields", "overhead,dso,sym",
                          "--percent-limit", "0.5"],
                         capture_output=True, text=True, check=True)
    for line in rep.stdout.splitlines():
        if line.strip() and not line.startswith("#"):
            pct, rest = line.strip().split(None, 1)
            print("  %7s  %s" % (pct, rest))


if __name__ == "__main__":
    sys.exit(main())
