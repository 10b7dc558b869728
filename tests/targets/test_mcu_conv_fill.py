"""The im2col fill of the blocked int8 Conv on a DSP core (``_conv_blocked`` in
``codegen/lower/quant.py``): a block of pixels in one output row with every tap's column inside
x builds each distinct column's channel-pair word once (``pkhbt``; int8 x: 4 columns per word
load, ``pkhtb`` and ``sxtb16``) and stores it to every (tap, pixel) slot that reads it; other
blocks test per tap; a 3-channel 3x3 int8 stem loads 4 columns per word and row of taps
(``fill_stem``). QuantizeLinear's rounding on microcontrollers. Bit-exact with onnxruntime on
cortex-m4 (QEMU) for strides, pads, dilations, odd channel counts and 1x1 kernels."""

from __future__ import annotations

import re
import shutil

import numpy as np
import onnxcc
import pytest
from builders import qlinear_conv
from onnx import TensorProto, helper, numpy_helper
from onnxcc.codegen.interpret import run_program
from onnxcc.runtime import qemu
from onnxcc.targets import get_target


qconv = qlinear_conv


#: case -> (model builder, distinct columns of a row block's words: xw0 .. xw{n-1}; None: the
#: pairs along a row of taps, (kw, c) flattened)
CASES = {
    "s1_pad1": (lambda: qconv(6, 4, 7, 10, 3, [1] * 4), 5),
    "s1_odd_c_uint8": (lambda: qconv(5, 3, 6, 11, 3, [1] * 4, x_type=np.uint8, xz=3), 5),
    "stem_c3_asym_pads": (lambda: qconv(3, 4, 8, 12, 3, [0, 1, 1, 0]), None),
    "stem_c3_s2_uint8": (lambda: qconv(3, 5, 11, 10, 3, [1] * 4, stride=2, x_type=np.uint8,
                                       xz=3), None),
    "stem_c3_xz0_dilation2": (lambda: qconv(3, 2, 9, 11, 3, [2, 1, 2, 3], dilation=2, xz=0),
                              None),
    "s2": (lambda: qconv(4, 5, 9, 13, 3, [1] * 4, stride=2), 7),
    "dilation2": (lambda: qconv(4, 3, 10, 12, 3, [2] * 4, dilation=2), 7),
    # (10 channels: 8 would hold the weights in registers, int_blocked.stationary_nest)
    "k1_s2": (lambda: qconv(10, 6, 9, 9, 1, [0] * 4, stride=2), 3),
    "c2_one_channel_word": (lambda: qconv(2, 3, 6, 7, 3, [1] * 4), 5),
    "k5x3_no_pad_xz0": (lambda: qconv(4, 3, 9, 8, (5, 3), [0] * 4, xz=0), 5),
}


def _tools_or_skip() -> None:
    t = get_target("cortex-m4")
    for tool in (t.cc, qemu.ARCHES[qemu.machine_for(t).arch].qemu):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/install-test-deps.sh)")


@pytest.mark.parametrize("case", list(CASES))
def test_conv_fill_bit_exact_with_onnxruntime(case):
    """The firmware's output (QEMU) and the loop-IR interpreter's equal onnxruntime's byte for
    byte; the kernel packs pairs with ``pkhbt`` (PKHBT), building a row block's ``n`` distinct
    column words once, or (a first layer of 3 channels) pairs along a row of taps."""
    import onnxruntime as ort

    _tools_or_skip()
    make, n = CASES[case]
    model, x = make()
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    cm = onnxcc.compile(model, "cortex-m4", name="t")
    k = cm.program.kernels[0]
    assert "blocked" in k.comment
    got = run_program(cm.program, [x])[0].reshape(want.shape)
    assert got.tobytes() == want.tobytes()
    assert qemu.run_on_qemu(cm, {"x": x})["y"].tobytes() == want.tobytes()
    c = "\n".join(p.read_text() for p in sorted(cm.lib_dir.glob("*.c")))
    assert "pkhbt %0, %1, %2, lsl #16" in c
    assert ("kh, then kw, c in pairs" in k.comment or "kw 0 and 2" in k.comment) is (n is None)
    if n is not None:
        assert f"int32_t xw{n - 1}" in c and f"xw{n}" not in c
    # int8 x (its zero point folded or 0), 4 consecutive columns among a row block's (3 x 3
    # taps): columns 0..3 as one word per channel, the channels' halves paired by pkhbt and
    # pkhtb, each pair widened by sxtb16 twice
    quad = n is not None and n >= 5 and x.dtype == np.int8
    assert bool(re.search(r"onnxcc_pkhtb\(xq0_1(a?), xq0_0\1\)", c)
                and re.search(r"onnxcc_sxtb16\(xr0a?, 8\)", c)) is quad


def test_pkhbt_reference():
    """``pkhbt(lo, hi)``: lo's low half in bits 0-15, hi's low half in bits 16-31."""
    from onnxcc.codegen.pkhbt import pkhbt

    assert pkhbt(-2, 3) == np.uint32(0x0003FFFE).view(np.int32)
    assert pkhbt(0x12345678, -1) == np.uint32(0xFFFF5678).view(np.int32)
    assert pkhbt(-128, -128) == np.uint32(0xFF80FF80).view(np.int32)


def test_pkhtb_reference():
    """``pkhtb(hi, lo)``: hi's high half in bits 16-31, lo's high half in bits 0-15; with
    ``sxtb16`` it pairs bytes 2 of two words."""
    from onnxcc.codegen.pkhbt import pkhbt, pkhtb
    from onnxcc.codegen.smlad import sxtb16

    assert pkhtb(np.uint32(0xFFFD0005).view(np.int32), 0x7FFF0000) == \
        np.uint32(0xFFFD7FFF).view(np.int32)
    a, b = np.uint32(0x84038201).view(np.int32), np.uint32(0x7F06FE05).view(np.int32)
    ea, eb = sxtb16(a, 0), sxtb16(b, 0)           # bytes 0 and 2: (1, 3), (5, 6)
    assert pkhbt(ea, eb) == np.uint32(0x00050001).view(np.int32)
    assert pkhtb(eb, ea) == np.uint32(0x00060003).view(np.int32)
    oa, ob = sxtb16(a, 8), sxtb16(b, 8)           # bytes 1 and 3: (-126, -124), (-2, 127)
    assert pkhbt(oa, ob) == np.uint32(0xFFFEFF82).view(np.int32)
    assert pkhtb(ob, oa) == np.uint32(0x007FFF84).view(np.int32)


def quantize(y_type, shape=(2, 3, 37), axis=None, zp=-3):
    """QuantizeLinear x float32 -> y_type with a constant zero point, per tensor or per
    ``axis``; x holds NaN, infinities, values far outside y's range and ties x = (k + 0.5) s."""
    r = np.random.default_rng(5)
    n = shape[axis] if axis is not None else 1
    s = (r.random(n) * 0.05 + 0.01).astype(np.float32)
    z = np.full(n, zp).astype(y_type)
    x = (r.standard_normal(shape) * 4).astype(np.float32)
    flat = x.reshape(-1)
    flat[:7] = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0]
    s0 = s[0] if axis is None else s.reshape([-1 if a == axis else 1 for a in range(len(shape))])
    ties = ((r.integers(-200, 200, x.shape) + 0.5) * s0).astype(np.float32)
    x = np.where(r.random(x.shape) < 0.3, ties, x).astype(np.float32)
    x.reshape(-1)[:7] = flat[:7]
    tp = helper.np_dtype_to_tensor_dtype(np.dtype(y_type))
    inits = [numpy_helper.from_array(s if axis is not None else s[0], "s"),
             numpy_helper.from_array(z if axis is not None else z[0], "z")]
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"],
                            **({"axis": axis} if axis is not None else {}))
    g = helper.make_graph([node], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", tp, list(shape))], inits)
    # 16-bit y from opset 21
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17 if tp in (
        TensorProto.INT8, TensorProto.UINT8) else 21)])
    m.ir_version = 10
    return m, x


@pytest.mark.parametrize("y_type,zp", [(np.int8, -3), (np.uint8, 128), (np.int16, -300),
                                       (np.uint16, 40000)])
def test_quantize_linear_survives_fast_math(y_type, zp):
    """A library built with -ffast-math (common in firmware builds) still rounds
    QuantizeLinear half to even: the ``quantize_*`` intrinsic reads the bits of x / scale +
    1.5 * 2**23, a sum that reassociation cannot fold away as it could ``(v + M) - M``. Finite
    x (fast-math assumes no NaN or infinity), ties and far values included: equal to
    onnxruntime's on the emulated Cortex-M4."""
    import onnxruntime as ort

    _tools_or_skip()
    model, x = quantize(y_type, zp=zp)
    x.reshape(-1)[:3] = [3.0, 1e30, -1e30]
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    cm = onnxcc.compile(model, "cortex-m4", name="t")
    fn = {np.int8: "i8", np.uint8: "u8", np.int16: "i16", np.uint16: "u16"}[y_type]
    assert f"onnxcc_quantize_{fn}(" in "\n".join(p.read_text() for p in cm.lib_dir.glob("*.c"))
    t = cm.target
    fw = qemu.Firmware(cm.lib_dir, cm.mmap, flags=[*t.c_flags, "-ffast-math"], opt="-Os",
                       cc=t.cc, machine=qemu.machine_for(t))
    assert fw.run({"x": x})["y"].tobytes() == want.tobytes()


@pytest.mark.parametrize("y_type,axis,zp", [(np.int8, None, -3), (np.uint8, None, 128),
                                            (np.int8, 1, 0), (np.uint8, 2, 7)])
def test_quantize_linear_on_cortex_m4_rounds_without_rintf(y_type, axis, zp):
    """QuantizeLinear with a constant zero point on a microcontroller rounds half to even by
    adding 1.5 * 2**23 and saturating the sum's bits (no roundeven helper in the C): the
    firmware's and the loop-IR interpreter's y equal onnxruntime's, NaN, infinities and ties
    included."""
    import onnxruntime as ort

    _tools_or_skip()
    model, x = quantize(y_type, axis=axis, zp=zp)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    cm = onnxcc.compile(model, "cortex-m4", name="t")
    assert run_program(cm.program, [x])[0].reshape(want.shape).tobytes() == want.tobytes()
    assert qemu.run_on_qemu(cm, {"x": x})["y"].tobytes() == want.tobytes()
    c = "\n".join(p.read_text() for p in sorted(cm.lib_dir.glob("*.c")))
    assert "12582912.0f" in c and "roundeven" not in c


def _batch2(model, x):
    """The model with a batch of 2 (x and x reversed along its columns)."""
    for v in (model.graph.input[0], model.graph.output[0]):
        v.type.tensor_type.shape.dim[0].dim_value = 2
    return model, np.concatenate([x, x[..., ::-1]])


def _window(model, x):
    """The model reading x as a window of a larger int8 input (2 more rows above, 3 more
    columns left and 1 right): a Slice its Conv reads in place, through the input's strides."""
    g = model.graph
    (_, C, H, W) = x.shape
    big = np.random.default_rng(9).integers(-128, 128, (1, C, H + 2, W + 4)).astype(np.int8)
    big[:, :, 2:, 3:W + 3] = x
    g.node[0].input[0] = "xw"
    g.node.insert(0, helper.make_node("Slice", ["x", "st", "en"], ["xw"]))
    g.initializer.extend([numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                          (("st", [0, 0, 2, 3]), ("en", [1, C, H + 2, W + 3]))])
    g.input[0].type.tensor_type.shape.dim[2].dim_value = H + 2
    g.input[0].type.tensor_type.shape.dim[3].dim_value = W + 4
    return model, big


def _rows_dilated(model, x):
    """The Conv with dilations [2, 1], strides [2, 1] and pads [2, 1, 1, 0]: rows of taps 2
    apart, the columns' dilation 1 (the word loads need it)."""
    (_, _, H, W) = x.shape
    node = model.graph.node[0]
    del node.attribute[:]
    node.attribute.extend([helper.make_attribute("pads", [2, 1, 1, 0]),
                           helper.make_attribute("strides", [2, 1]),
                           helper.make_attribute("dilations", [2, 1])])
    dims = model.graph.output[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = (H + 3 - 5) // 2 + 1, W + 1 - 2
    return model, x


#: case -> (model builder, whether some pixel's 4 columns leave x: a second load path)
STEM_CASES = {
    "s2_top_left_pad": (lambda: qconv(3, 8, 12, 13, 3, [1, 1, 0, 0], stride=2), True),
    "s1_pad1_xz0": (lambda: qconv(3, 6, 9, 10, 3, [1] * 4, xz=0), True),
    "s2_no_pad_odd_width": (lambda: qconv(3, 5, 11, 11, 3, [0] * 4, stride=2), True),
    "s2_bottom_right_pad2": (lambda: qconv(3, 4, 9, 11, 3, [0, 0, 2, 2], stride=2), True),
    "s1_no_pad_per_tensor": (lambda: qconv(3, 3, 7, 12, 3, [0] * 4, w_scale=(0.0, 0.004)),
                             True),
    "s2_interior_only_batch2": (lambda: _batch2(*qconv(3, 4, 8, 12, 3, [0] * 4, stride=2)),
                                False),
    "rows_dilated_s2x1": (lambda: _rows_dilated(*qconv(3, 5, 11, 9, 3, [0] * 4)), True),
    "s2_window_of_the_input": (lambda: _window(*qconv(3, 6, 10, 11, 3, [1, 1, 0, 0],
                                                      stride=2)), True),
    "s2_last_column_ends_x": (lambda: qconv(3, 4, 9, 11, 3, [0] * 4, stride=2), True),
}
#: case -> the test of a pixel whose 3 columns end at x's last (its load reads 1 byte past the
#: row, into a lane of weight 0) that its flat index leaves that byte inside x: channel 2's
#: last row 2 * 99 + 8 * 11 + 10 = 296, its loads from the base up to 2 * 99 + 2 * 11 + 3
OVER_READ = {"s2_last_column_ends_x": " <= 73))"}


@pytest.mark.parametrize("case", list(STEM_CASES))
def test_stem_fill_word_loads_bit_exact(case):
    """A 3-channel 3x3 int8 first layer (``_stem_words``): per pixel, row of taps and channel
    one word load of 4 columns (a block in one row inside x: from one base; a pixel whose
    columns leave x: a clamped load shifted, the zero point shifted in), words by sxtb16 /
    pkhbt; 14 reduction words with the per-channel
    start (and multiplier) after each channel block's weights. QEMU's output and the loop-IR
    interpreter's equal onnxruntime's byte for byte."""
    import onnxruntime as ort

    _tools_or_skip()
    make, edge = STEM_CASES[case]
    model, x = make()
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    cm = onnxcc.compile(model, "cortex-m4", name="t")
    (k,) = cm.program.kernels
    assert "kw 0 and 2" in k.comment
    # x read flat: the input, or the span of a window of it
    (xb,) = [b for b in k.params if b.name == "x"]
    assert len(xb.shape) == 1 and (xb.shape[0] < x.size) == ("window" in case)
    got = run_program(cm.program, [x])[0].reshape(want.shape)
    assert got.tobytes() == want.tobytes()
    assert qemu.run_on_qemu(cm, {"x": x})["y"].tobytes() == want.tobytes()
    (wp,) = [b for b in k.params if b.name == "wp"]
    per_channel = "requantize per channel" in k.comment
    assert wp.shape[1:] == (14 + 1 + per_channel, 2)       # 14 words, start, multiplier
    assert not any(b.name in ("rq_m", "acc0", "b") for b in k.params)
    c = "\n".join(p.read_text() for p in sorted(cm.lib_dir.glob("*.c")))
    body = c[c.index(f"t_{k.name}_qlinearconv("):]
    assert " ? x[" not in body                              # no byte loads, no guards per tap
    # 9 word loads per pixel: of a block in one row inside x (one base), else of each pixel
    # (and of a pixel at the border, shifted)
    assert "int32_t xb2_22 = onnxcc_load4(" in body
    if case in OVER_READ:   # (in the pixels' test, no test of the column itself)
        assert OVER_READ[case] in body and " < 8)" not in body and " <= 8)" not in body
    assert body.count("onnxcc_load4(&x[") == 9 * 3 * (3 if edge else 2)
    assert body.count("onnxcc_sxtb16(") == 14 * 3 * 2
