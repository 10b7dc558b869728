"""benchmarks/cmsis_nn.py: the layers it hands CMSIS-NN are those of onnxcc's int8 graph
(shapes, strides, pads, kind), and its harness builds, runs and counts one call per layer on
the emulated Cortex-M4, failing on an error status. CMSIS-NN itself is not shipped here (users
pass their checkout with ``--cmsis-nn``): a stand-in with CMSIS-NN's types and entry points,
whose work grows with the layer, takes its place."""

from __future__ import annotations

import shutil

import numpy as np
import onnxcc
import pytest
from builders import load_benchmark
from onnx import TensorProto, helper, numpy_helper
from onnxcc.errors import BuildError

C = load_benchmark("onnxcc_bench_cmsis_nn", "cmsis_nn.py")

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None
                               or shutil.which("qemu-system-arm") is None,
                               reason="needs gcc-arm-none-eabi and qemu-system-arm")


def _int8_model():
    """Conv 3->8 3x3 stride 2 pad 1, depthwise 3x3 stride 2 pads (0, 0, 1, 1), pointwise,
    GlobalAveragePool, Gemm 8->5: quantized by onnxcc.Int8."""
    r = np.random.default_rng(3)
    w = lambda *s: numpy_helper.from_array((r.standard_normal(s) * 0.3).astype(np.float32),  # noqa: E731
                                           f"w{len(s)}_{s[0]}_{s[1]}")
    w1, w2, w3 = w(8, 3, 3, 3), w(8, 1, 3, 3), w(8, 8, 1, 1)
    fc = numpy_helper.from_array((r.standard_normal((5, 8)) * 0.3).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["x", w1.name], ["a"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", w2.name], ["b"], group=8, strides=[2, 2],
                              pads=[0, 0, 1, 1]),
             helper.make_node("Relu", ["b"], ["br"]),
             helper.make_node("Conv", ["br", w3.name], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                          [w1, w2, w3, fc])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    calib = {"x": r.standard_normal((4, 3, 16, 16)).astype(np.float32)}
    return onnxcc.compile(m, "cortex-m4", name="t", quantize=onnxcc.Int8(calibration=calib),
                          max_recompute=0)


def test_layers_are_those_of_the_int8_graph():
    cm = _int8_model()
    layers = [C.layer_of(n) for n in cm.graph.nodes]
    got = [la for la in layers if la is not None]
    assert got == [C.Layer(2, 16, 16, 3, 8, 8, 8, 3, 3, 2, 2, 1, 1),
                   C.Layer(1, 8, 8, 8, 4, 4, 8, 3, 3, 2, 2, 0, 0),
                   C.Layer(2, 4, 4, 8, 4, 4, 8),
                   C.Layer(3, 1, 1, 8, 1, 1, 5, rows=1)]
    m = got[1].macros()
    assert (m["KIND"], m["IN_BYTES"], m["W_BYTES"], m["OUT_BYTES"]) == (1, 512, 72, 128)
    assert got[0].macros()["W_BYTES"] == 8 * 3 * 3 * 3


# CMSIS-NN's types as its headers lay them out, and entry points whose loops run once per MAC
STAND_IN_H = r"""
#include <stdint.h>
typedef enum { ARM_CMSIS_NN_SUCCESS = 0, ARM_CMSIS_NN_ARG_ERROR = -1 } arm_cmsis_nn_status;
typedef struct { int32_t w; int32_t h; } cmsis_nn_tile;
typedef struct { void *buf; int32_t size; } cmsis_nn_context;
typedef struct { int32_t n; int32_t h; int32_t w; int32_t c; } cmsis_nn_dims;
typedef struct { int32_t *multiplier; int32_t *shift; } cmsis_nn_per_channel_quant_params;
typedef struct { int32_t multiplier; int32_t shift; } cmsis_nn_per_tensor_quant_params;
typedef struct { int32_t min; int32_t max; } cmsis_nn_activation;
typedef struct { int32_t input_offset; int32_t output_offset; cmsis_nn_tile stride;
                 cmsis_nn_tile padding; cmsis_nn_tile dilation; cmsis_nn_activation activation;
} cmsis_nn_conv_params;
typedef struct { int32_t input_offset; int32_t output_offset; int32_t ch_mult;
                 cmsis_nn_tile stride; cmsis_nn_tile padding; cmsis_nn_tile dilation;
                 cmsis_nn_activation activation; } cmsis_nn_dw_conv_params;
typedef struct { int32_t input_offset; int32_t filter_offset; int32_t output_offset;
                 cmsis_nn_activation activation; } cmsis_nn_fc_params;
#define ARGS const cmsis_nn_dims *in, const int8_t *x, const cmsis_nn_dims *fd, const int8_t *w, \
    const cmsis_nn_dims *bd, const int32_t *b, const cmsis_nn_dims *od, int8_t *y
arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx,
    const cmsis_nn_dw_conv_params *p, const cmsis_nn_per_channel_quant_params *q, ARGS);
int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size(const cmsis_nn_dw_conv_params *p,
    const cmsis_nn_dims *in, const cmsis_nn_dims *fd, const cmsis_nn_dims *od);
arm_cmsis_nn_status arm_convolve_wrapper_s8(const cmsis_nn_context *ctx,
    const cmsis_nn_conv_params *p, const cmsis_nn_per_channel_quant_params *q, ARGS);
int32_t arm_convolve_wrapper_s8_get_buffer_size(const cmsis_nn_conv_params *p,
    const cmsis_nn_dims *in, const cmsis_nn_dims *fd, const cmsis_nn_dims *od);
arm_cmsis_nn_status arm_fully_connected_s8(const cmsis_nn_context *ctx,
    const cmsis_nn_fc_params *p, const cmsis_nn_per_tensor_quant_params *q, ARGS);
int32_t arm_fully_connected_s8_get_buffer_size(const cmsis_nn_dims *fd);
"""

STAND_IN_C = r"""
#include "arm_nnfunctions.h"
static arm_cmsis_nn_status macs(int32_t n, const int8_t *x, const int8_t *w, int8_t *y) {
    int32_t s = 0;
    for (int32_t i = 0; i < n; ++i) s += x[i & 15] * w[i & 7];
    y[0] = (int8_t)s;
    return n > 0 ? ARM_CMSIS_NN_SUCCESS : ARM_CMSIS_NN_ARG_ERROR;
}
arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx,
    const cmsis_nn_dw_conv_params *p, const cmsis_nn_per_channel_quant_params *q, ARGS) {
    (void)ctx; (void)q; (void)in; (void)bd; (void)b;
    if (p->stride.w == 3) return ARM_CMSIS_NN_ARG_ERROR;
    return macs(od->h * od->w * od->c * fd->h * fd->w, x, w, y);
}
int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size(const cmsis_nn_dw_conv_params *p,
    const cmsis_nn_dims *in, const cmsis_nn_dims *fd, const cmsis_nn_dims *od) {
    (void)p; (void)in; (void)fd; (void)od; return 0;
}
arm_cmsis_nn_status arm_convolve_wrapper_s8(const cmsis_nn_context *ctx,
    const cmsis_nn_conv_params *p, const cmsis_nn_per_channel_quant_params *q, ARGS) {
    (void)ctx; (void)p; (void)q; (void)bd; (void)b;
    return macs(od->h * od->w * od->c * fd->h * fd->w * in->c, x, w, y);
}
int32_t arm_convolve_wrapper_s8_get_buffer_size(const cmsis_nn_conv_params *p,
    const cmsis_nn_dims *in, const cmsis_nn_dims *fd, const cmsis_nn_dims *od) {
    (void)p; (void)in; (void)fd; (void)od; return 64;
}
arm_cmsis_nn_status arm_fully_connected_s8(const cmsis_nn_context *ctx,
    const cmsis_nn_fc_params *p, const cmsis_nn_per_tensor_quant_params *q, ARGS) {
    (void)ctx; (void)p; (void)q; (void)bd; (void)b;
    return macs(in->n * fd->n * od->c, x, w, y);
}
int32_t arm_fully_connected_s8_get_buffer_size(const cmsis_nn_dims *fd) { (void)fd; return 0; }
"""


@needs_arm
def test_harness_counts_one_call_per_layer(tmp_path):
    """Each kind of layer builds and runs; the count grows with the layer's MACs (the stand-in
    loops once per MAC) and is that of one call; an error status fails the run."""
    from onnxcc.runtime import qemu

    root = tmp_path / "cmsis"
    (root / "Include").mkdir(parents=True)
    (root / "Include" / "arm_nnfunctions.h").write_text(STAND_IN_H)
    src = root / "Source" / "ConvolutionFunctions"
    src.mkdir(parents=True)
    (src / "stand_in_s8.c").write_text(STAND_IN_C)
    cm = _int8_model()
    peer = C.CmsisNN(root, qemu.firmware(cm, opt="-Os"), tmp_path / "work")
    small, big = C.Layer(1, 8, 8, 8, 4, 4, 8, 3, 3, 2, 2), C.Layer(1, 16, 16, 8, 8, 8, 8, 3, 3, 2, 2)
    n_small, n_big = peer.count(small), peer.count(big)
    assert 4 * 4 * 8 * 9 < n_small < 20 * 4 * 4 * 8 * 9
    assert 3.5 < n_big / n_small < 4.5                   # 4x the MACs
    conv, fc = C.Layer(2, 4, 4, 8, 4, 4, 8), C.Layer(3, 1, 1, 8, 1, 1, 5, rows=1)
    assert peer.count(conv) > 4 * 4 * 8 * 8 > peer.count(fc) > 40
    with pytest.raises(BuildError, match="exited with 91"):      # the harness: st != 0
        peer.count(C.Layer(1, 9, 9, 8, 3, 3, 8, 3, 3, 3, 3))
