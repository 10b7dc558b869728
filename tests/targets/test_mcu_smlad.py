"""int8 Conv, MatMul and Gemm on microcontrollers as blocked products
(``codegen/lower/int_blocked.py``): SMLAD on cores with the DSP extension, int16 multiply-adds
elsewhere; bit-exact with the graph interpreter, the loop-IR interpreter and the host build, and
under an instruction-per-MAC bound counted exactly by QEMU's TCG plugin."""

from __future__ import annotations

import re
import shutil

import numpy as np
import onnx
import onnxcc
import pytest
from builders import W7, qlinear_conv
from onnx import TensorProto, helper, numpy_helper
from onnxcc.codegen.interpret import run_program
from onnxcc.interpreter import interpret
from onnxcc.runtime import qemu
from onnxcc.targets import get_target

IR_VERSION = 10


def _model(node: onnx.NodeProto, x_shape, x_type, y_shape, inits) -> onnx.ModelProto:
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", x_type, x_shape)],
                          [helper.make_tensor_value_info("y", x_type, y_shape)],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    return m


def qconv(C, M, H, W, k, pad, stride=1, x_type=np.uint8, seed=0):
    """QLinearConv x (1, C, H, W) uint8/int8 -> y, int8 weights per output channel."""
    return qlinear_conv(C, M, H, W, k, [pad] * 4, stride, x_type=x_type,
                        xz=3 if x_type == np.uint8 else -5, seed=seed, w_scale=(0.01, 0.002))


def qmatmul(Mr, K, N, seed=1, x_type=np.uint8):
    """QLinearMatMul a (Mr, K) uint8 (or int8) @ b (K, N) int8 (constant)."""
    r = np.random.default_rng(seed)
    u8 = x_type == np.uint8
    inits = {"as": np.float32(0.03), "az": x_type(7 if u8 else -9),
             "b": r.integers(*W7, (K, N)).astype(np.int8), "bs": np.float32(0.004),
             "bz": np.int8(0), "ys": np.float32(0.1), "yz": x_type(100 if u8 else 3)}
    node = helper.make_node("QLinearMatMul", ["x", "as", "az", "b", "bs", "bz", "ys", "yz"],
                            ["y"], name="mm")
    x = r.integers(np.iinfo(x_type).min, np.iinfo(x_type).max + 1, (Mr, K)).astype(x_type)
    return _model(node, [Mr, K], TensorProto.UINT8 if u8 else TensorProto.INT8, [Mr, N],
                  inits), x


def qgemm(Mr, K, N, seed=4, per_channel=False):
    """com.microsoft.QGemm a (Mr, K) int8 @ b^T (N, K) int8 (constant) + c (N,) int32; b's
    scale per column of y with ``per_channel``."""
    r = np.random.default_rng(seed)
    bs = r.uniform(0.002, 0.006, N).astype(np.float32) if per_channel else np.float32(0.004)
    inits = {"as": np.float32(0.03), "az": np.int8(-11),
             "b": r.integers(*W7, (N, K)).astype(np.int8), "bs": bs,
             "bz": np.zeros(np.shape(bs), np.int8), "c": r.integers(-3000, 3000, N).astype(np.int32),
             "ys": np.float32(0.1), "yz": np.int8(-4)}
    node = helper.make_node("QGemm", ["x", "as", "az", "b", "bs", "bz", "c", "ys", "yz"], ["y"],
                            name="qg", domain="com.microsoft", transB=1)
    x = r.integers(-128, 128, (Mr, K)).astype(np.int8)
    m = _model(node, [Mr, K], TensorProto.INT8, [Mr, N], inits)
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return m, x


def matmul_integer(Mr, K, N, seed=2):
    """MatMulInteger a (Mr, K) int8 @ b (K, N) uint8 (constant) with a zero point per column of
    b: int32 y."""
    r = np.random.default_rng(seed)
    inits = {"b": r.integers(0, 256, (K, N)).astype(np.uint8), "az": np.int8(-3),
             "bz": r.integers(0, 256, N).astype(np.uint8)}
    node = helper.make_node("MatMulInteger", ["x", "b", "az", "bz"], ["y"], name="mmi")
    x = r.integers(-128, 128, (Mr, K)).astype(np.int8)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT8,
                                                                      [Mr, K])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [Mr, N])],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    return m, x


def conv_integer(C, M, H, W, k, pad, seed=3):
    """ConvInteger x (1, C, H, W) uint8, uint8 weights with a zero point of 131: int32 y."""
    r = np.random.default_rng(seed)
    inits = {"w": r.integers(0, 256, (M, C, k, k)).astype(np.uint8), "xz": np.uint8(9),
             "wz": np.uint8(131)}
    node = helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], pads=[pad] * 4,
                            name="ci")
    x = r.integers(0, 256, (1, C, H, W)).astype(np.uint8)
    out = H + 2 * pad - k + 1, W + 2 * pad - k + 1
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8,
                                                                      [1, C, H, W])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [1, M, *out])],
                          [numpy_helper.from_array(v, k_) for k_, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    return m, x


CASES = {
    "pointwise": lambda: qconv(16, 12, 6, 5, 1, 0),
    "conv3x3_pad_int8": lambda: qconv(5, 6, 7, 6, 3, 1, x_type=np.int8),
    "conv3x3_stride2": lambda: qconv(4, 5, 9, 9, 3, 1, stride=2),
    "conv3x3_no_pad": lambda: qconv(6, 5, 7, 8, 3, 0),   # im2col without tests, per pixel
    "matmul": lambda: qmatmul(3, 21, 7),
    "matmul_batch1": lambda: qmatmul(1, 33, 10),
    # int8 a, K a multiple of 4: a read 4 bytes a word, widened by sxtb16, zero point folded
    "matmul_int8_batch1": lambda: qmatmul(1, 36, 10, x_type=np.int8),
    "matmul_int8": lambda: qmatmul(4, 24, 7, x_type=np.int8),
    "qgemm_int8_bias_batch1": lambda: qgemm(1, 40, 10),   # the bias folded into the start
    # per-channel multipliers; 7 columns in blocks of 4 (the last one repeated)
    "qgemm_per_channel_batch1": lambda: qgemm(1, 24, 7, per_channel=True),
    "matmul_integer": lambda: matmul_integer(4, 19, 6),
    "conv_integer_uint8_w": lambda: conv_integer(3, 4, 6, 5, 3, 1),
    "conv_1ch_pairs_along_kw": lambda: qconv(1, 5, 11, 7, 5, 2, stride=2, x_type=np.int8),
}


def _tools_or_skip(target: str) -> None:
    """Skips the test when the target's cross compiler or its QEMU is missing."""
    t = get_target(target)
    arch = qemu.ARCHES[qemu.machine_for(t).arch]
    for tool in (t.cc, arch.qemu):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/install-test-deps.sh)")


def then_wider(model: onnx.ModelProto, x: np.ndarray, wide: int = 48):
    """``model`` (one QLinearConv x -> y) followed by two 1 x 1 QLinearConvs, y -> ``wide``
    channels -> 4 (the graph's output, still named y): the first conv's output then lies in the
    arena beside a wider tensor's, so its step leaves a gap that kernel scratch fits (the
    arena's peak is the next step; compile it with ``max_recompute=0``, else the patch pass
    computes the chain of 1 x 1 layers pixel by pixel). Returns (model, x)."""
    r = np.random.default_rng(9)
    g = model.graph
    (out,) = g.output
    tt = out.type.tensor_type
    M = tt.shape.dim[1].dim_value
    dt = helper.tensor_dtype_to_np_dtype(tt.elem_type)
    z = 128 if dt == np.uint8 else 2
    inits = {"wa": r.integers(*W7, (wide, M, 1, 1)).astype(np.int8),
             "wb": r.integers(*W7, (4, wide, 1, 1)).astype(np.int8),
             "wsa": np.full(wide, 0.004, np.float32), "wsb": np.full(4, 0.003, np.float32),
             "wza": np.zeros(wide, np.int8), "wzb": np.zeros(4, np.int8),
             "s1": np.float32(0.05), "z1": np.asarray(z, dt), "s2": np.float32(0.08)}
    g.initializer.extend(numpy_helper.from_array(np.asarray(v), n) for n, v in inits.items())
    g.node[-1].output[0] = "y0"
    g.node.extend([
        helper.make_node("QLinearConv", ["y0", "ys", "yz", "wa", "wsa", "wza", "s1", "z1"],
                         ["y1"], name="wider"),
        helper.make_node("QLinearConv", ["y1", "s1", "z1", "wb", "wsb", "wzb", "s2", "z1"],
                         ["y"], name="narrower")])
    shape = [d.dim_value for d in tt.shape.dim]
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("y", tt.elem_type, [1, 4, *shape[2:]]))
    return model, x


def _c_text(cm) -> str:
    return "\n".join(p.read_text() for p in sorted(cm.lib_dir.glob("*.c")))


def bit_exact_on(model, x, target: str, **options):
    """Compile ``model`` for ``target`` (``options`` to ``onnxcc.compile``); its output y for
    input ``x`` must equal, byte for byte, the graph interpreter's, the host build's, the
    loop-IR interpreter's and the firmware's on QEMU. Returns the CompiledModel."""
    cm = onnxcc.compile(model, target, name="t", **options)
    want = interpret(cm.graph, {"x": x})["y"]
    host = onnxcc.compile(model, "host", name="t").run({"x": x})["y"]
    assert host.dtype == want.dtype and host.tobytes() == want.tobytes()
    assert run_program(cm.program, [x])[0].reshape(want.shape).tobytes() == want.tobytes()
    got = qemu.run_on_qemu(cm, {"x": x})["y"]
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    return cm


def _check(case: str, target: str) -> str:
    cm = bit_exact_on(*CASES[case](), target)
    k = cm.program.kernels[0]
    assert "blocked" in k.comment and any(b.name == "wp" for b in k.inputs)
    assert ("c, kh, kw in pairs" in k.comment) is case.startswith("conv_1ch")
    return _c_text(cm)


@pytest.mark.parametrize("int8", [False, True], ids=["int16_weights", "int8_weights"])
@pytest.mark.parametrize("case", list(CASES))
def test_blocked_int8_on_cortex_m4_is_bit_exact_and_uses_smlad(case, int8, monkeypatch):
    """Both weight forms of the DSP kernels (int16 pairs, the default where they fit the flash;
    int8 widened by sxtb16) are bit-exact."""
    from onnxcc.codegen.lower import int_blocked

    _tools_or_skip("cortex-m4")
    monkeypatch.setattr(int_blocked, "INT8_WEIGHTS", int8)
    c = _check(case, "cortex-m4")
    assert "__smlad(" in c and "acc00 = onnxcc_smlad(" in c
    # int8 words where every centered weight fits int8 (not so for the uint8 weights)
    assert ("onnxcc_sxtb16(w0_0" in c) is (int8 and "integer" not in case)
    # the ldm groups (one LDMIA each on the M4): in a 1 x 5 block its 5 weight words, else
    # per word the 3 positions' scratch words
    batch1 = case.endswith("batch1")
    assert f"onnxcc_ldm{(4 if case == 'qgemm_per_channel_batch1' else 5) if batch1 else 3}a(" \
        "&onnxcc_w" in c
    assert "ldmia %[q]!" in c
    # int8 a with K % 4 == 0: one word load of 4 bytes, 2 sxtb16 (no zero point subtracted)
    words = case in ("matmul_int8", "matmul_int8_batch1", "qgemm_int8_bias_batch1",
                     "qgemm_per_channel_batch1")
    assert ("onnxcc_load4(&a" in c and "onnxcc_sxtb16(a4_0, 8)" in c) is words
    # one row: the 2 words of each 4 bytes adjacent in the scratch, one STRD (stpair)
    assert ("onnxcc_stpair(&col[" in c) is (words and batch1)


def test_weights_int16_only_when_twice_their_bytes_fit_the_flash():
    """By default (``INT8_WEIGHTS`` None) the blocked products store int16 pairs when the
    graph's weights counted twice fit the target's flash, else int8 words (the int8 model's
    bytes), bit-exact either way."""
    import dataclasses

    from onnxcc.codegen.lower import int_blocked

    assert int_blocked.INT8_WEIGHTS is None
    model, x = qconv(16, 32, 6, 6, 3, 1)
    wbytes = 32 * 16 * 9 + 32 * 4 + 32 * 4   # int8 w, int32 b, float32 ws (+ zero points)
    m4 = get_target("cortex-m4")
    forms = {}
    for flash in (m4.flash_bytes, 2 * wbytes - 64):
        cm = onnxcc.compile(model, dataclasses.replace(m4, flash_bytes=flash), name="t")
        (wp,) = [b for b in cm.program.kernels[0].inputs if b.name == "wp"]
        # (less each channel's start and multiplier, 2 int32 that follow its block's weights)
        forms[flash] = wp.data.nbytes - 8 * wp.shape[0] * wp.shape[2]
        got = run_program(cm.program, [x])[0].reshape(-1)
        assert got.tobytes() == interpret(cm.graph, {"x": x})["y"].reshape(-1).tobytes()
    assert forms[m4.flash_bytes] == 2 * 32 * 16 * 9
    assert forms[2 * wbytes - 64] == 32 * 16 * 9
    assert int_blocked.int8_weights(m4, m4.flash_bytes // 2 + 1)
    assert not int_blocked.int8_weights(m4, m4.flash_bytes // 2)
    assert int_blocked.int8_weights(dataclasses.replace(m4, flash_bytes=None), 10)


@pytest.mark.parametrize("case", ["conv3x3_pad_int8"])
def test_blocked_int8_plain_c_without_dsp(case):
    """cortex-m3 has no DSP extension: the same blocking with int16 multiply-adds, no SMLAD."""
    _tools_or_skip("cortex-m3")
    c = _check(case, "cortex-m3")
    assert "smlad" not in c.lower()


def test_smlad_reference_wraps_like_the_instruction():
    from onnxcc.codegen.smlad import smlad

    def lo_hi(lo: int, hi: int) -> np.int32:
        return np.uint32((lo & 0xFFFF) | ((hi & 0xFFFF) << 16)).view(np.int32)

    assert smlad(lo_hi(-2, 3), lo_hi(5, -7), np.int32(100)) == 100 - 10 - 21
    big = lo_hi(-32768, -32768)
    # 2**30 + 2**30 + (2**31 - 1) wraps around int32 as SMLAD's sum does
    assert smlad(big, big, np.int32(2**31 - 1)) == np.int32(-1 + 2**31 - 2**32 + 2**31)


#: (case, target) -> instructions per MAC bound. Measured at -Os (QEMU TCG counts exactly):
#: cortex-m4 with int16 weight pairs (the default where they fit the flash,
#: int_blocked.int8_weights) 1.290, 1.206, 1.330 (1.348, 1.373, 1.330 with 2 x 2 blocks and
#: the x zero point subtracted in the im2col fill); with int8 weights widened by sxtb16 1.944,
#: 1.791, 2.004 with the requantize_hi / sat_i8 epilogue (2.08, 2.02, 1.92 with the generic
#: requantize; 5.80, 10.08, 8.08 before the blocked kernels); cortex-m3 2.84 for the pointwise
#: layer (5.80 before). With the ldm groups (LDMIA of the 3 pixels' scratch words, of 4 weights
#: of a batch-1 block), straight-line reductions of <= 32 words and loops of 12 words:
#: cortex-m4 1.211, 1.140, 0.991 (int16 weights); cortex-m3 2.493. A 128 -> 128 pointwise
#: layer (64 words: a reduction loop, in 2 trips of 32 with the weights' ldm groups) 0.762
#: (0.787 in trips of 12 and a remainder loop of 4). With a block's requantize multipliers read
#: before its stores: cortex-m4 0.758, 0.831, 0.928, 0.952 (0.762, 0.834, 0.931 before);
#: cortex-m3 2.253.
BOUNDS = {
    ("pointwise_128_128", "cortex-m4"): 0.765,
    ("pointwise_64_32", "cortex-m4"): 0.85,
    ("conv3x3_16_16", "cortex-m4"): 0.95,
    ("dense_256_32", "cortex-m4"): 1.5,
    ("pointwise_64_32", "cortex-m3"): 3.1,
}
SPEED = {"pointwise_64_32": (lambda: qconv(64, 32, 10, 10, 1, 0), 64 * 32 * 100),
         "pointwise_128_128": (lambda: qconv(128, 128, 6, 6, 1, 0), 128 * 128 * 36),
         "conv3x3_16_16": (lambda: qconv(16, 16, 8, 8, 3, 1), 16 * 16 * 9 * 64),
         "dense_256_32": (lambda: qmatmul(1, 256, 32), 256 * 32)}


@pytest.mark.parametrize("case,target", list(BOUNDS))
def test_instructions_per_mac(case, target):
    """The whole run (one kernel) under the measured instructions-per-MAC bound, output exact."""
    _tools_or_skip(target)
    make, macs = SPEED[case]
    model, x = make()
    cm = onnxcc.compile(model, target, name="t")
    prof = qemu.count_kernels(cm, {"x": x}, opt="-Os")
    assert prof.outputs["y"].tobytes() == interpret(cm.graph, {"x": x})["y"].tobytes()
    (n,) = prof.kernels.values()
    assert n / macs < BOUNDS[case, target], n / macs


@pytest.mark.parametrize("case", ["conv3x3_pad_int8"])
def test_int8_weights_widened_by_sxtb16(case, monkeypatch):
    """With ``int_blocked.INT8_WEIGHTS`` the DSP form keeps int8 weights (4 per word, widened by
    the sxtb16 intrinsic in the loop): still bit-exact, and the weights take 1 byte each."""
    from onnxcc.codegen.lower import int_blocked

    _tools_or_skip("cortex-m4")
    monkeypatch.setattr(int_blocked, "INT8_WEIGHTS", True)
    c = _check(case, "cortex-m4")
    assert "sxtb16 %0, %1, ror #8" in c and "onnxcc_sxtb16(w0_0, 8)" in c
    model, _ = CASES[case]()
    sizes = []
    for int8 in (True, False):
        monkeypatch.setattr(int_blocked, "INT8_WEIGHTS", int8)
        k = onnxcc.compile(model, "cortex-m4", name="t").program.kernels[0]
        # (less each channel's start and multiplier, 2 int32 that follow its block's weights)
        sizes += [b.data.nbytes - 8 * b.shape[0] * b.shape[2] for b in k.inputs
                  if b.name == "wp"]
    assert sizes[0] <= 0.55 * sizes[1]   # about half (an odd count of words rounds up)
    monkeypatch.setattr(int_blocked, "INT8_WEIGHTS", False)   # int16 pairs: bit-exact too
    assert "onnxcc_sxtb16(w0_0" not in _check(case, "cortex-m4")


def test_sxtb16_reference():
    from onnxcc.codegen.smlad import sxtb16

    word = np.uint32(0x80_7F_FE_01).view(np.int32)   # bytes 01, FE, 7F, 80 (low first)
    lanes = lambda v: (np.int16(np.uint32(v.view(np.uint32)) & 0xFFFF),   # noqa: E731
                       np.int16(np.uint32(v.view(np.uint32)) >> 16))
    assert lanes(sxtb16(word, 0)) == (1, 127) and lanes(sxtb16(word, 8)) == (-2, -128)


def test_smmla_epilogue_only_where_it_is_exact():
    """cortex-m4: the requantize epilogue is ``smmla`` and an SSAT with a shift
    (``requantize.mla_form``) where no accumulator the layer can produce is a tie; with
    power-of-two scales (multiplier 2**-9: a tie at every odd multiple of 256) it stays the exact
    round-half-to-even form. Both bit-exact on QEMU."""
    _tools_or_skip("cortex-m4")
    model, x = qconv(16, 12, 6, 5, 1, 0)
    assert "onnxcc_smmla(" in _c_text(bit_exact_on(model, x, "cortex-m4"))
    pow2 = {"xs": np.float32(2.0 ** -6), "ws": np.full(12, 2.0 ** -7, np.float32),
            "ys": np.float32(2.0 ** -4)}
    for t in model.graph.initializer:
        if t.name in pow2:
            t.CopyFrom(numpy_helper.from_array(pow2[t.name], t.name))
    c = _c_text(bit_exact_on(model, x, "cortex-m4"))
    assert "onnxcc_smmla(" not in c and "onnxcc_requantize_hi(" in c


def qbinary(op: str, x_type, b_shape, seed=4):
    """com.microsoft.QLinearAdd/QLinearMul of x (1, 4, 5, 6) and a constant b of ``b_shape``
    (broadcast), every zero point non-zero."""
    r = np.random.default_rng(seed)
    info = np.iinfo(x_type)
    tp = TensorProto.UINT8 if x_type == np.uint8 else TensorProto.INT8
    z = (lambda v: x_type(v + 128 if x_type == np.uint8 else v))
    inits = {"as": np.float32(0.021), "az": z(3), "b": r.integers(info.min, info.max + 1,
                                                                   b_shape).astype(x_type),
             "bs": np.float32(0.037), "bz": z(-2), "ys": np.float32(0.05 if op == "Add" else 0.3),
             "yz": z(-5)}
    node = helper.make_node(f"QLinear{op}", ["x", "as", "az", "b", "bs", "bz", "ys", "yz"],
                            ["y"], domain="com.microsoft", name="qb")
    m = _model(node, [1, 4, 5, 6], tp, [1, 4, 5, 6], inits)
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    x = r.integers(info.min, info.max + 1, (1, 4, 5, 6)).astype(x_type)
    return m, x


@pytest.mark.parametrize("op,x_type,b_shape", [("Add", np.int8, (1, 4, 5, 6)),
                                               ("Add", np.uint8, (4, 1, 1)),
                                               ("Mul", np.int8, (1, 1, 6))])
def test_qlinear_binary_rounds_by_vcvtr_on_cortex_m4(op, x_type, b_shape):
    """QLinearAdd/QLinearMul with constant scales on cortex-m4: the quotient rounded by
    ``round_i32`` (VCVTR), the zero point an int add, SSAT/USAT; bit-exact with the host build
    and the interpreters (the spec's float formula), within 1 of onnxruntime (whose kernel
    scales each input by its ratio to the output scale, so its ties fall elsewhere)."""
    _tools_or_skip("cortex-m4")
    model, x = qbinary(op, x_type, b_shape)
    cm = bit_exact_on(model, x, "cortex-m4")
    assert "onnxcc_round_i32(" in _c_text(cm)
    import onnxruntime as ort
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    got = qemu.run_on_qemu(cm, {"x": x})["y"]
    assert np.abs(got.astype(np.int32) - ref.astype(np.int32)).max() <= 1


@pytest.mark.parametrize("y_type,zp,per_axis", [(np.int8, -3, False), (np.uint8, 131, False),
                                                (np.int8, 7, True)])
def test_quantize_linear_edges_on_cortex_m4(y_type, zp, per_axis):
    """A float32 QuantizeLinear on cortex-m4 (per tensor: the ``quantize_i8``/``quantize_u8``
    intrinsic; per axis): ties to even, infinities and values past int32 saturate, NaN of
    either sign goes to the type's minimum; bit-exact with the host build, the interpreters
    and onnxruntime."""
    _tools_or_skip("cortex-m4")
    r = np.random.default_rng(6)
    x = (r.standard_normal((1, 3, 4, 5)) * 3).astype(np.float32)
    x.flat[:12] = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0185, -0.0185, 0.0555, 4.7, -4.7,
                   1e10, -0.0]
    # x / scale past the float bit trick's exact range (2**22), where its sum turns negative
    # (<= -1.5 * 2**23) or its bits pass +inf's; a NaN with the sign bit set
    x.flat[12:20] = [155189.5, -155189.5, 465567.7, -465567.7, -9.3e5, 3.4e38, -3.4e38, 1e-40]
    x.view(np.uint32).flat[20] = 0xFFC00001
    s = np.array([0.037, 0.02, 0.05], np.float32) if per_axis else np.float32(0.037)
    z = np.array([zp, -zp, 0], y_type) if per_axis else y_type(zp)
    tp = TensorProto.UINT8 if y_type == np.uint8 else TensorProto.INT8
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1, name="q")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [1, 3, 4, 5])],
                          [helper.make_tensor_value_info("y", tp, [1, 3, 4, 5])],
                          [numpy_helper.from_array(s, "s"), numpy_helper.from_array(z, "z")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = IR_VERSION
    cm = bit_exact_on(model, x, "cortex-m4")
    assert ("onnxcc_quantize_" in _c_text(cm)) == (not per_axis)
    import onnxruntime as ort
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(qemu.run_on_qemu(cm, {"x": x})["y"], ref)


def test_unrolled_row_with_no_remainder_builds_at_o2():
    """A 1x1 QLinearConv of one channel over 7 x 12 positions (found by a requantize fuzz):
    its rows of 84 accumulators are unrolled by 4, and the remainder loop that could never run
    made arm-none-eabi-gcc -O2 (-Werror) fail with "iteration 1073741823 invokes undefined
    behavior". A remainder is now emitted only when the trip count leaves one."""
    _tools_or_skip("cortex-m4")
    model, x = qconv(1, 1, 7, 12, 1, 0)
    cm = bit_exact_on(model, x, "cortex-m4")     # the firmware builds at the target's -O2
    c = _c_text(cm)
    # two passes unrolled by 4 (bias, taps) without remainders; the requantize pass is not
    assert c.count("ow_j + 4 <= ow_n") == 2 and c.count("for (; ow_j < ow_n; ++ow_j)") == 1


def test_dense_1x5_block_walks_one_weight_pointer():
    """A batch-1 QLinearMatMul 64 -> 10 on cortex-m4 (blocks of 5 columns): each reduction
    word's 5 weights are one group (LDMIA of r8, r10-r12, lr) through one walking pointer, set
    once before the loop over the blocks; the input fill runs 4 words a trip. Bit-exact."""
    _tools_or_skip("cortex-m4")
    model, x = qmatmul(1, 64, 10)
    c = _c_text(bit_exact_on(model, x, "cortex-m4"))
    assert len(re.findall(r"const int32_t \*onnxcc_w\d+ = ", c)) == 1
    assert len(re.findall(r"onnxcc_ldm5a\(&onnxcc_w\d+, ", c)) == 32     # 32 words, 5 each
    assert not re.search(r"= \*onnxcc_w\d+\+\+;", c)
    assert '__asm__("lr")' in c


@pytest.mark.parametrize("N,mb", [(10, 5), (7, 4)])
def test_dense_batch1_reads_starts_and_multipliers_with_its_weights(N, mb):
    """A batch-1 QGemm with a bias and per-channel scales on cortex-m4 (ResNet-8's classifier
    64 -> 10; 7 columns: blocks of 4, the last column repeated): each channel block's start
    values (bias and folded zero point) and requantize multipliers lie before and after its
    weights in the one weight buffer, read through the walking pointer (the starts into
    register bank 1, the multipliers as one group of the block's size), so the kernel takes
    no start or multiplier buffer of its own. Bit-exact."""
    _tools_or_skip("cortex-m4")
    cm = bit_exact_on(*qgemm(1, 64, N, per_channel=True), "cortex-m4")
    k = cm.program.kernels[0]
    assert {b.name for b in k.inputs} == {"a", "wp"}
    (wp,) = [b for b in k.inputs if b.name == "wp"]
    assert wp.shape == (-(-N // mb), 32 + 2, mb)    # (blocks, start + 32 words + multiplier, mb)
    c = _c_text(cm)
    assert len(re.findall(r"const int32_t \*onnxcc_w\d+ = ", c)) == 1
    assert len(re.findall(rf"onnxcc_ldm{mb}a\(&onnxcc_w\d+, ", c)) == 33  # 32 words + the tail
    assert len(re.findall(r"onnxcc_ldm4b\(&onnxcc_w\d+, &acc00, ", c)) == 1   # the starts


def test_batch1_block_of_5_columns_with_a_straight_line_reduction():
    """A batch-1 block takes the 5 columns of one LDMIA where that repeats no more columns
    than 4 do and the reduction runs straight-line (at most STRAIGHT_WORDS words); in a
    reduction loop 4 (1 x 5 spilled there); else the fewest repeated columns."""
    from onnxcc.codegen.lower.int_blocked import STRAIGHT_WORDS, block_shape

    assert block_shape(1, 20, 32) == (1, 5) and block_shape(1, 20, STRAIGHT_WORDS + 1) == (1, 4)
    assert block_shape(1, 20) == (1, 4)
    assert block_shape(1, 10, 392) == (1, 5) and block_shape(1, 16, 4) == (1, 4)
    _tools_or_skip("cortex-m4")
    cm = bit_exact_on(*qgemm(1, 32, 20, per_channel=True), "cortex-m4")
    assert "blocked 1 rows x 5 columns" in cm.program.kernels[0].comment


@pytest.mark.parametrize("int8", [False, True], ids=["int16_weights", "int8_weights"])
@pytest.mark.parametrize("shape", [(8, 6, 5, 7, 1, 0), (8, 5, 3, 3, 1, 0), (2, 5, 5, 6, 2, 1),
                                   (8, 4, 5, 7, 1, 0, 1, np.int8)],
                         ids=["pointwise_35px", "pointwise_9px", "k2x2_2ch_pad",
                              "pointwise_35px_int8_x"])
def test_short_reduction_holds_the_weights(shape, int8, monkeypatch):
    """A QLinearConv of 4 reduction words (8 input channels 1 x 1; 2 channels 2 x 2) on
    cortex-m4 holds each channel's weight words in registers over a block of pixels
    (int_blocked.stationary_nest): one ldm group of the weights per channel (int8 weights: 2
    words widened by sxtb16) and its start, its requantize multiplier read on through the same
    pointer, then per pixel one group of its 4 scratch words and 4 SMLAD; the 35 pixels in 2
    blocks of 18, the last starting at pixel 17 (no clamp per pixel). With
    int8 x a 1 x 1 layer's fill reads 4 pixels of a channel per word (fill_quads). Bit-exact;
    16 channels keep 3 x 2 blocks."""
    from onnxcc.codegen.lower import int_blocked

    _tools_or_skip("cortex-m4")
    monkeypatch.setattr(int_blocked, "INT8_WEIGHTS", int8)
    # (followed by a wider layer: the scratch fits a gap of the arena, see the next test)
    cm = bit_exact_on(*then_wider(*qconv(*shape)), "cortex-m4", max_recompute=0)
    _, M, H, W, k, pad, *_ = shape
    P = (H + 2 * pad - k + 1) * (W + 2 * pad - k + 1)
    PB = int_blocked.block_shape(P, M, 4)[0]
    assert PB == {35: 18, 9: 9, 42: 21}[P]
    assert f"per channel its 4 weight words held over the {PB} pixels" in \
        cm.program.kernels[0].comment
    c = _c_text(cm)
    c = c[c.index("t_k0_qlinearconv("):c.index("t_k1_qlinearconv(")]
    assert len(re.findall(r"onnxcc_ldm4[ab]\(&onnxcc_w\d+, &x\d+_0, &x\d+_1", c)) == PB
    # the channel's start and requantize multiplier read on through the weights' pointer
    assert ("onnxcc_ldm2" in c and "onnxcc_sxtb16(w8_1, 8)" in c and "&acc0v, &wp_v0)" in c) \
        if int8 else ("&w0, &w1, &w2, &w3, &acc0v)" in c and
                      re.search(r"int32_t wp_v0 = \*onnxcc_w\d+\+\+;", c))
    quads = len(shape) > 6
    assert ("onnxcc_load4(&x" in c and "onnxcc_pkhtb(xq8_1, xq8_0)" in c
            and "onnxcc_sxtb16(xr8, 8)" in c) is quads
    if P == 35:
        assert "onnxcc_min_int32((pp * 18), 17)" in c and "17) + 1)" in c
        assert not re.search(r"onnxcc_min_int32\(\(\(pp \* 18\) \+ \d+\)", c)
    cm = onnxcc.compile(qconv(16, 6, 5, 7, 1, 0)[0], "cortex-m4", name="t")
    assert "3 pixels x 2 channels" in cm.program.kernels[0].comment


def test_short_reduction_scratch_never_raises_the_arena_peak(monkeypatch):
    """A held block's scratch (4 words a pixel) that would raise the arena's peak (here the
    conv's output is the graph's, so the arena holds nothing else) gives way to 4 x 1 blocks
    whose scratch of 64 bytes stays a local array: the arena stays 0. Followed by a wider layer
    the same conv holds its weights over 18 pixels, the scratch in a gap of the arena (the
    arena no larger than the tensors' plan). Bit-exact both ways."""
    _tools_or_skip("cortex-m4")
    model, x = qconv(8, 6, 5, 7, 1, 0)
    cm = bit_exact_on(model, x, "cortex-m4")
    k = cm.program.kernels[0]
    assert "4 pixels x 1 channels" in k.comment and "held" not in k.comment
    assert cm.program.arena_size == 0 and not any(b.space == "arena" for b in k.outputs[1:])
    wide = onnxcc.compile(then_wider(*qconv(8, 6, 5, 7, 1, 0))[0], "cortex-m4", name="t",
                          max_recompute=0)
    k = wide.program.kernels[0]
    assert "held over the 18 pixels" in k.comment
    (col,) = [b for b in k.outputs if b.name == "col"]
    y0 = wide.graph.meta["memory_plan"].buffers["y0"]
    assert col.space == "arena" and col.offset + 4 * 4 * 18 <= wide.program.arena_size
    assert col.offset >= y0.offset + y0.size or col.offset + 4 * 4 * 18 <= y0.offset
    # the same arena as with blocks whose scratch (64 bytes) stays a local array
    from onnxcc.codegen.lower import int_blocked
    monkeypatch.setattr(int_blocked, "STATIONARY_PB", 4)
    small = onnxcc.compile(then_wider(*qconv(8, 6, 5, 7, 1, 0))[0], "cortex-m4", name="t",
                           max_recompute=0)
    assert not any(b.name == "col" for b in small.program.kernels[0].outputs)
    assert small.program.arena_size == wide.program.arena_size


def test_blocks_share_the_requantize_multiplier_and_store_by_flat_pixel():
    """A 3x3 QLinearConv of 16 channels on cortex-m4 (3 x 2 blocks, per-channel scales) over 7 x
    5 output pixels (35: a partial last block, which overlaps the one before): each channel's
    start and requantize multiplier follow its block's packed weights (one weight buffer), the
    multiplier read once per block into a local for its 3 epilogues, both channels' before the
    block's first store; the y stores index the flat pixel (no division by the row length), and
    no pixel index is clamped. Bit-exact."""
    _tools_or_skip("cortex-m4")
    cm = bit_exact_on(*qconv(16, 4, 7, 5, 3, 1, x_type=np.int8), "cortex-m4")
    c = _c_text(cm)
    k = cm.program.kernels[0]
    assert not {b.name for b in k.inputs} & {"rq_m", "acc0", "chan"}
    (wp,) = [b for b in k.inputs if b.name == "wp"]
    assert wp.shape == (2, 9 * 8 + 2, 2)     # 2 channel blocks: 72 weight words, start, m
    assert len(re.findall(r"int32_t wp_v\d = wp", c)) == 2
    # both multipliers read before the block's first store (adjacent words: one LDRD)
    assert c.index("int32_t wp_v1 = wp") < c.index("y[", c.index("int32_t wp_v0 = wp"))
    ys = [ln for ln in c.splitlines() if re.match(r"\s*y\[", ln)]
    assert len(ys) == 6 and not any("div" in ln or "mod" in ln for ln in ys)
    assert "onnxcc_min_int32((pp * 3), 32)" in c
    assert not re.search(r"onnxcc_min_int32\(\(\(pp \* 3\) \+ \d+\)", c)
