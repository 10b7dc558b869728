"""Kernels for M-profile cores (issue 10, item 5): the depthwise Conv a target with
``scalar_accumulators`` gets (codegen/lower/nn.py ``_conv_depthwise_scalar``) has the structure
promised (taps unrolled into one accumulator per output, no guard on any position, no local
array), equals onnxruntime in the interpreter, as host C and on the emulated Cortex-M4, and
stays under a generous instructions-per-MAC bound counted by QEMU's TCG plugin. Patching is
off (max_recompute=0), so each layer is one kernel."""

from __future__ import annotations

import shutil

import numpy as np
import onnxcc
import pytest
from onnx.reference import ReferenceEvaluator
from builders import make_model, ort_run
from loopir import run_c, run_interp
from onnxcc.codegen.loops import (If, Load, Loop, MulAdd, Store, stmt_exprs, walk_exprs,
                                  walk_stmts)
from onnxcc.codegen.lower import lower_program
from onnxcc.codegen.lower.nn import SCALAR_BLOCK, SCALAR_TILE
from onnxcc.codegen.verify import verify
from onnxcc.runtime import qemu
from onnxcc.targets import get_target

DW_CASES = [   # x shape, w shape, attrs
    ((1, 8, 25, 5), (8, 1, 3, 3), dict(group=8, pads=[1, 1, 1, 1])),            # DS-CNN-like
    ((1, 4, 9, 11), (4, 1, 3, 3), dict(group=4, pads=[1, 1, 1, 1], strides=[2, 2])),
    ((1, 3, 3, 3), (3, 1, 3, 3), dict(group=3, pads=[1, 1, 1, 1])),             # all border
    ((1, 2, 7, 8), (4, 1, 3, 3), dict(group=2, auto_pad="SAME_UPPER", strides=[2, 2])),  # mult 2
    ((1, 3, 9, 9), (3, 1, 3, 3), dict(group=3, dilations=[2, 2], pads=[2, 1, 2, 1])),
    ((1, 2, 8, 7), (2, 1, 5, 5), dict(group=2, pads=[2, 2, 2, 2])),    # too many runs: guarded
    ((1, 3, 12), (3, 1, 3), dict(group=3, pads=[1, 1])),                          # 1-D
    ((1, 2, 6, 6), (2, 1, 3, 3), dict(group=2)),                                  # no padding
]


def _program(model, target: str = "cortex-m4"):
    """The verified Program of ``model`` lowered for ``target``."""
    cm = onnxcc.compile(model, target, max_recompute=0)
    p = lower_program(cm.graph, target=get_target(target))
    verify(p)
    return p


def _model(rng, xs, ws, attrs, relu=True, w=None):
    w = rng.standard_normal(ws, dtype=np.float32) if w is None else w
    b = rng.standard_normal(ws[0], dtype=np.float32)
    nodes = [("Conv", ["x", "w", "b"], ["c" if relu else "y"], attrs)]
    if relu:
        nodes.append(("Relu", ["c"], ["y"]))
    return make_model(nodes, inputs={"x": xs}, outputs={"y": None}, inits={"w": w, "b": b})


def _exprs(body):
    return [e for s in walk_stmts(body) for top in stmt_exprs(s) for e in walk_exprs(top)]


@pytest.mark.parametrize("xs,ws,attrs", DW_CASES, ids=[f"dw{k}" for k in range(len(DW_CASES))])
def test_scalar_depthwise_matches_onnxruntime(rng, xs, ws, attrs):
    m = _model(rng, xs, ws, attrs)
    p = _program(m)
    (k,) = p.kernels
    assert "one accumulator per output" in k.comment and not k.locals
    x = rng.standard_normal(xs, dtype=np.float32)
    want = ort_run(m, {"x": x})["y"]
    for got in (run_interp(p, [x]), run_c(p, [x])):
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


def test_scalar_depthwise_has_no_guards_and_unrolled_taps(rng):
    """A 3x3, pad-1 depthwise layer: nine nests (interior, 4 edges, 4 corners), no If and no
    masked load anywhere, the interior's loop free of tap loops: each output is 9 multiply-adds
    (an edge 6, a corner 4) into a scalar, SCALAR_BLOCK outputs per iteration along the row."""
    B = SCALAR_BLOCK
    p = _program(_model(rng, (1, 8, 12, 2 * B + 2), (8, 1, 3, 3),
                        dict(group=8, pads=[1, 1, 1, 1])))
    (k,) = p.kernels
    stmts = list(walk_stmts(k.body))
    assert not any(isinstance(s, If) for s in stmts)
    assert not any(isinstance(e, Load) and e.mask is not None for e in _exprs(k.body))
    loads = [e for e in _exprs(k.body) if isinstance(e, Load) and e.buf.name == "x"]
    # per channel: the interior's block of B outputs x 9 taps, top and bottom edges B x 6 each,
    # left and right edges 6 each, corners 4 each
    assert len(loads) == 9 * B + 2 * 6 * B + 2 * 6 + 4 * 4
    innermost = [s for s in stmts if isinstance(s, Loop)
                 and not any(isinstance(t, Loop) for t in walk_stmts(s.body))]
    interior = max(innermost, key=lambda s: sum(isinstance(e, MulAdd) for e in _exprs(s.body)))
    assert sum(isinstance(e, MulAdd) for e in _exprs(interior.body)) == 9 * B


def test_scalar_depthwise_blocks_along_the_longer_interior(rng):
    """DS-CNN's 25x5 maps: the blocks of SCALAR_BLOCK outputs go down the 23-row interior (the
    3 interior columns hold no full block), each block SCALAR_BLOCK x 9 multiply-adds."""
    p = _program(_model(rng, (1, 4, 25, 5), (4, 1, 3, 3), dict(group=4, pads=[1, 1, 1, 1])))
    (k,) = p.kernels
    blocks = [s for s in walk_stmts(k.body) if isinstance(s, Loop) and s.var.name.endswith("_j")]
    assert blocks and all(s.var.name == "oh_j" for s in blocks)
    interior = max(blocks, key=lambda s: sum(isinstance(e, MulAdd) for e in _exprs(s.body)))
    assert sum(isinstance(e, MulAdd) for e in _exprs(interior.body)) == 9 * SCALAR_BLOCK


def test_scalar_depthwise_nonfinite_weights_guard_the_border(rng):
    """An infinite weight times zero padding is NaN in onnx's reference: the border reads are
    masked loads (0) that still multiply, the interior stays unguarded."""
    w = rng.standard_normal((3, 1, 3, 3), dtype=np.float32)
    w[1, 0, 0, 0] = np.inf
    m = _model(rng, (1, 3, 6, 7), w.shape, dict(group=3, pads=[1, 1, 1, 1]), relu=False, w=w)
    p = _program(m)
    (k,) = p.kernels
    assert "interior unguarded" in k.comment
    x = rng.standard_normal((1, 3, 6, 7), dtype=np.float32)
    want = ReferenceEvaluator(m).run(None, {"x": x})[0]
    assert np.isnan(want).any()
    for got in (run_interp(p, [x]), run_c(p, [x])):
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


def test_host_keeps_the_tap_stationary_depthwise(rng):
    """The choice follows ``Target.scalar_accumulators``: host C keeps its vectorizable nest."""
    assert get_target("cortex-m4").scalar_accumulators
    assert get_target("cortex-m0plus").scalar_accumulators
    assert not get_target("host").scalar_accumulators
    p = _program(_model(rng, (1, 4, 6, 6), (4, 1, 3, 3), dict(group=4, pads=[1, 1, 1, 1])), "host")
    assert "one accumulator per output" not in p.kernels[0].comment


def _tools_or_skip(target: str) -> None:
    mc = qemu.machine_for(get_target(target))
    arch = qemu.ARCHES[mc.arch]
    for tool, pkg in ((get_target(target).cc, arch.cc_packages), (arch.qemu, arch.qemu_package)):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install {pkg})")


@pytest.mark.slow
def test_scalar_depthwise_instructions_per_mac_on_m4(rng):
    """A DS-CNN-shaped 3x3 depthwise layer (64 channels of 25x5, pad 1, Relu) on the emulated
    Cortex-M4 at -Os: equal to onnxruntime, and at most 3.5 instructions per MAC (measured
    2.35; the tap-stationary nest ran 7.64)."""
    _tools_or_skip("cortex-m4")
    m = _model(rng, (1, 64, 25, 5), (64, 1, 3, 3), dict(group=64, pads=[1, 1, 1, 1]))
    cm = onnxcc.compile(m, "cortex-m4", max_recompute=0)
    x = rng.standard_normal((1, 64, 25, 5), dtype=np.float32)
    np.testing.assert_allclose(qemu.run_on_qemu(cm, {"x": x})["y"], ort_run(m, {"x": x})["y"],
                               rtol=1e-5, atol=1e-5)
    prof = qemu.count_kernels(cm, {"x": x}, opt="-Os")
    assert prof.kernels is not None and len(prof.kernels) == 1
    per_mac = sum(prof.kernels.values()) / (64 * 25 * 5 * 9)
    assert per_mac <= 3.5, per_mac


INT8_DW_CASES = [   # x shape, depth multiplier, attrs
    ((1, 8, 25, 5), 1, dict(pads=[1, 1, 1, 1])),
    ((1, 4, 9, 11), 1, dict(pads=[1, 1, 1, 1], strides=[2, 2])),
    ((1, 3, 7, 8), 2, dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    ((1, 4, 3, 3), 1, dict(pads=[1, 1, 1, 1])),
    ((1, 2, 8, 7), 1, dict(pads=[2, 2, 2, 2], kernel_shape=[5, 5])),   # too many runs: generic
]


@pytest.mark.parametrize("xs,mult,attrs", INT8_DW_CASES,
                         ids=[f"qdw{k}" for k in range(len(INT8_DW_CASES))])
def test_int8_scalar_depthwise_is_bit_exact(rng, xs, mult, attrs):
    """An int8 depthwise layer (onnxcc.Int8) lowered for the Cortex-M4 (scalar accumulators, a
    start value per border run, or the SMLAD kernel for one channel per group) gives exactly the
    bytes of the host's lowering, in the interpreter and as C; QLinearConv kernels other than
    3x3 keep the generic nest."""
    C = xs[1]
    k = attrs.pop("kernel_shape", [3, 3])
    w = rng.standard_normal((C * mult, 1, *k), dtype=np.float32)
    model = _model(rng, xs, w.shape, dict(group=C, **attrs), w=w)
    calib = [{"x": rng.standard_normal(xs, dtype=np.float32)} for _ in range(4)]
    quant = onnxcc.Int8(calibration=calib)
    m4 = onnxcc.compile(model, "cortex-m4", quantize=quant, max_recompute=0)
    host = onnxcc.compile(model, "host", quantize=quant, max_recompute=0)
    p = lower_program(m4.graph, target=get_target("cortex-m4"))
    verify(p)
    (conv,) = [kk for kk in p.kernels if kk.op == "QLinearConv"]
    smlad = "packed at compile time" in conv.comment      # codegen/lower/int_depthwise.py
    scalar = "one accumulator per output" in conv.comment
    # 3x3 with one channel per group: the SMLAD kernel; 3x3 with a depth multiplier: the
    # scalar nest; other kernels: the generic nest
    assert (smlad, scalar) == ((k == [3, 3] and mult == 1), (k == [3, 3] and mult > 1))
    x = calib[0]
    want = host.run(x)["y"]
    np.testing.assert_array_equal(m4.run(x)["y"], want)
    np.testing.assert_array_equal(run_interp(p, [x["x"]])[0], want)


@pytest.mark.slow
def test_int8_scalar_depthwise_on_m4(rng):
    """The DS-CNN-shaped int8 depthwise layer on the emulated Cortex-M4 at -Os: bit-exact with
    the host build and at most 11 instructions per MAC (measured 8.3; the generic nest 18.2)."""
    _tools_or_skip("cortex-m4")
    xs = (1, 64, 25, 5)
    model = _model(rng, xs, (64, 1, 3, 3), dict(group=64, pads=[1, 1, 1, 1]))
    calib = [{"x": rng.standard_normal(xs, dtype=np.float32)} for _ in range(4)]
    cm = onnxcc.compile(model, "cortex-m4", quantize=onnxcc.Int8(calibration=calib), max_recompute=0)
    prof = qemu.count_kernels(cm, calib[0], opt="-Os")
    np.testing.assert_array_equal(prof.outputs["y"], cm.run(calib[0])["y"])
    ks = {k.name: k for k in cm.program.kernels}
    (conv,) = [n for n in prof.kernels if ks[n].op == "QLinearConv"]
    assert prof.kernels[conv] / (64 * 25 * 5 * 9) <= 11


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m55", "rv32imac"])
def test_scalar_depthwise_on_other_cores(rng, target):
    """The scalar depthwise nests on a soft-float Armv6-M core, an Armv8.1-M core with
    Helium and RISC-V: float equals onnxruntime, int8 the host's bytes."""
    _tools_or_skip(target)
    xs = (1, 6, 9, 7)
    model = _model(rng, xs, (6, 1, 3, 3), dict(group=6, pads=[1, 0, 1, 1], strides=[2, 1]))
    x = {"x": rng.standard_normal(xs, dtype=np.float32)}
    cm = onnxcc.compile(model, target, max_recompute=0)
    np.testing.assert_allclose(qemu.run_on_qemu(cm, x)["y"], ort_run(model, x)["y"],
                               rtol=1e-5, atol=1e-5)
    quant = onnxcc.Int8(calibration=[x])
    q = onnxcc.compile(model, target, quantize=quant, max_recompute=0)
    host = onnxcc.compile(model, "host", quantize=quant, max_recompute=0)
    np.testing.assert_array_equal(qemu.run_on_qemu(q, x)["y"], host.run(x)["y"])


TILE_CASES = [   # x shape, w shape, attrs
    ((1, 16, 25, 5), (16, 16, 1, 1), {}),           # DS-CNN-like: 125 pixels, a 1-pixel tail
    ((1, 6, 3, 3), (10, 6, 1, 1), {}),              # 9 pixels, 10 channels: a 2-channel block
    ((1, 8, 2, 3), (6, 4, 1, 1), dict(group=2)),    # grouped, 3 channels per group
    ((1, 5, 7), (3, 5, 1), {}),                     # 1-D, fewer channels than a block
    ((1, 4, 9, 11), (8, 4, 3, 3), dict(pads=[1, 1, 1, 1])),                  # ResNet-like
    ((1, 3, 10, 9), (8, 3, 3, 3), dict(pads=[0, 0, 1, 1], strides=[2, 2])),  # a stem
    ((1, 4, 7, 8), (6, 2, 3, 3), dict(pads=[1, 1, 1, 1], group=2)),
    ((1, 2, 9, 9), (5, 2, 3, 3), dict(pads=[2, 1, 2, 1], dilations=[2, 2])),
    ((1, 2, 3, 3), (4, 2, 1, 1), dict(pads=[2, 2, 2, 2])),   # border outputs are the bias
    ((1, 1, 49, 10), (8, 1, 10, 4), dict(pads=[4, 1, 5, 1], strides=[2, 2])),  # DS-CNN's stem:
]                                                                   # too many runs, x padded


@pytest.mark.parametrize("xs,ws,attrs", TILE_CASES,
                         ids=[f"tile{k}" for k in range(len(TILE_CASES))])
def test_scalar_conv_tile(rng, xs, ws, attrs):
    """A Conv on the Cortex-M4 is the scalar register tile (codegen/lower/nn.py
    ``_conv_scalar_tile``): no guard and no masked load, y stored once per output after the
    reduction (no store inside a loop over input channels, whose body loads at most
    SCALAR_TILE[1] weights per tap); equal to onnxruntime in the interpreter and as C."""
    m = _model(rng, xs, ws, attrs)
    p = _program(m)
    (k,) = p.kernels
    assert "in scalar locals" in k.comment
    assert not any(isinstance(s, If) for s in walk_stmts(k.body))
    assert not any(isinstance(e, Load) and e.mask is not None for e in _exprs(k.body))
    reds = [s for s in walk_stmts(k.body) if isinstance(s, Loop) and s.var.name == "c"]
    assert reds or ws[1] == 1
    assert ("zero-padded" in k.comment) == (ws[2:] == (10, 4))
    # padded: the kernel rows a loop (unrolled, gcc -Os spilled 40 taps' loads: 760 B of stack)
    assert any(isinstance(s, Loop) and s.var.name == "kh" for s in walk_stmts(k.body)) == (
        "zero-padded" in k.comment)
    taps = int(np.prod(ws[2:]))
    for red in reds:
        assert not any(isinstance(s, Store) for s in walk_stmts(red.body))
        loads = [e for e in _exprs(red.body) if isinstance(e, Load)]
        assert 0 < sum(e.buf.name == "wp" for e in loads) <= taps * SCALAR_TILE[1]
    x = rng.standard_normal(xs, dtype=np.float32)
    want = ort_run(m, {"x": x})["y"]
    for got in (run_interp(p, [x]), run_c(p, [x])):
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


def test_scalar_conv_tile_nonfinite_weights_multiply_the_padding(rng):
    """An infinite weight times zero padding is NaN in onnx's reference: the tile then reads a
    zero-padded copy of x (every tap multiplies) instead of skipping the padded taps."""
    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    w[1, 0, 0, 0] = np.inf
    m = _model(rng, (1, 3, 6, 7), w.shape, dict(pads=[1, 1, 1, 1]), relu=False, w=w)
    p = _program(m)
    (k,) = p.kernels
    assert "in scalar locals" in k.comment and "zero-padded" in k.comment
    x = rng.standard_normal((1, 3, 6, 7), dtype=np.float32)
    want = ReferenceEvaluator(m).run(None, {"x": x})[0]
    assert np.isnan(want).any()
    for got in (run_interp(p, [x]), run_c(p, [x])):
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("xs,ws,pads,bound", [
    ((1, 64, 25, 5), (64, 64, 1, 1), [0, 0, 0, 0], 2.0),    # DS-CNN's 1x1 (measured 1.87)
    ((1, 16, 16, 16), (16, 16, 3, 3), [1, 1, 1, 1], 1.7),   # ResNet-8's 3x3 (measured 1.51)
], ids=["pointwise", "3x3"])
def test_scalar_conv_tile_instructions_per_mac_on_m4(rng, xs, ws, pads, bound):
    """A DS-CNN 1x1 and a ResNet-8 3x3 layer (Relu) on the emulated Cortex-M4 at -Os: equal to
    onnxruntime and under a bound in instructions per MAC (the tap-stationary nest ran 2.23 and
    2.36)."""
    _tools_or_skip("cortex-m4")
    m = _model(rng, xs, ws, dict(pads=pads))
    cm = onnxcc.compile(m, "cortex-m4", max_recompute=0)
    x = rng.standard_normal(xs, dtype=np.float32)
    prof = qemu.count_kernels(cm, {"x": x}, opt="-Os")
    np.testing.assert_allclose(prof.outputs["y"], ort_run(m, {"x": x})["y"], rtol=1e-5, atol=1e-5)
    assert prof.kernels is not None and len(prof.kernels) == 1
    per_mac = sum(prof.kernels.values()) / (np.prod(ws) * xs[2] * xs[3])
    assert per_mac <= bound, per_mac


DENSE_CASES = [   # x shape, w shape, op attrs, Relu after
    ((1, 64), (12, 64), dict(transB=1), False),     # DS-CNN's classifier: 8 + 4 columns
    ((1, 64), (64, 12), {}, True),
    ((3, 7), (5, 7), dict(transB=1), False),        # odd k: a tail step
    ((2, 640), (128, 640), dict(transB=1), True),   # a long sum
]


@pytest.mark.parametrize("xs,ws,attrs,relu", DENSE_CASES,
                         ids=[f"dense{k}" for k in range(len(DENSE_CASES))])
def test_scalar_dense(rng, xs, ws, attrs, relu):
    """A Gemm with constant B on the Cortex-M4 sums each output in a local
    (codegen/lower/matmul.py ``_product_scalar``): y stored once per output, never inside the
    loop over k; equal to onnxruntime in the interpreter and as C."""
    w = rng.standard_normal(ws, dtype=np.float32)
    N = ws[0] if attrs.get("transB") else ws[1]
    b = rng.standard_normal(N, dtype=np.float32)
    nodes = [("Gemm", ["x", "w", "b"], ["g" if relu else "y"], attrs)]
    if relu:
        nodes.append(("Relu", ["g"], ["y"]))
    m = make_model(nodes, inputs={"x": xs}, outputs={"y": None}, inits={"w": w, "b": b})
    p = _program(m)
    (k,) = p.kernels
    assert "outputs in scalar locals" in k.comment
    reds = [s for s in walk_stmts(k.body) if isinstance(s, Loop) and s.var.name in ("kb", "k")]
    assert reds and not any(isinstance(s, Store) for r in reds for s in walk_stmts(r.body))
    x = rng.standard_normal(xs, dtype=np.float32)
    want = ort_run(m, {"x": x})["y"]
    for got in (run_interp(p, [x]), run_c(p, [x])):
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_scalar_dense_instructions_per_mac_on_m4(rng):
    """A 256->64 Gemm (transB, PyTorch's Linear) on the emulated Cortex-M4 at -Os: equal to
    onnxruntime, at most 2.6 instructions per MAC (measured 2.39; the 16-way dot product ran
    3.87 on DS-CNN's 64->12)."""
    _tools_or_skip("cortex-m4")
    w = rng.standard_normal((64, 256), dtype=np.float32)
    b = rng.standard_normal(64, dtype=np.float32)
    m = make_model([("Gemm", ["x", "w", "b"], ["y"], dict(transB=1))], inputs={"x": (1, 256)},
                   outputs={"y": None}, inits={"w": w, "b": b})
    cm = onnxcc.compile(m, "cortex-m4", max_recompute=0)
    x = rng.standard_normal((1, 256), dtype=np.float32)
    prof = qemu.count_kernels(cm, {"x": x}, opt="-Os")
    np.testing.assert_allclose(prof.outputs["y"], ort_run(m, {"x": x})["y"], rtol=1e-5, atol=1e-5)
    assert prof.kernels is not None and len(prof.kernels) == 1
    per_mac = sum(prof.kernels.values()) / (256 * 64)
    assert per_mac <= 2.6, per_mac
