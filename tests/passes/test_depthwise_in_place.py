"""In-place depthwise convolution on microcontroller targets (TinyEngine): the plan writes a
depthwise Conv's output over its input, the kernel computes channel by channel through a plane of
scratch, and the numbers stay those of the unaliased build (onnxruntime for float, the host build
bit for bit for int8)."""

import shutil

import numpy as np
import onnxcc
import pytest
from builders import make_model, ort_run
from onnxcc.passes.plan_memory import check_plan, plan

QEMU = pytest.mark.skipif(shutil.which("qemu-system-arm") is None
                          or shutil.which("arm-none-eabi-gcc") is None,
                          reason="needs qemu-system-arm and arm-none-eabi-gcc")


def _block(rng, C=32, size=16, stride=1, k=3, residual=False):
    """x (1,4,size,size) -> 1x1 Conv to C + Relu -> depthwise kxk Conv (bias) + Clip(0,6) ->
    1x1 Conv to 8; with ``residual`` the expansion's output is added before that Conv (so the
    depthwise input is read after the depthwise Conv)."""
    def w(*s):
        return (rng.standard_normal(s) * 0.3).astype(np.float32)

    pad = k // 2
    nodes = [("Conv", ["x", "we"], ["e"]), ("Relu", ["e"], ["r"]),
             ("Conv", ["r", "wd", "bd"], ["d"],
              {"group": C, "strides": [stride] * 2, "pads": [pad] * 4}),
             ("Clip", ["d", "lo", "hi"], ["c"]), ("Conv", ["c", "wp"], ["y"])]
    inits = {"we": w(C, 4, 1, 1), "wd": w(C, 1, k, k), "bd": w(C), "wp": w(8, C, 1, 1),
             "lo": np.float32(0), "hi": np.float32(6)}
    if residual:
        nodes[-1:] = [("Add", ["c", "r"], ["s"]), ("Conv", ["s", "wp"], ["y"])]
    return make_model(nodes, inputs={"x": (1, 4, size, size)}, outputs={"y": None}, inits=inits)


def _dw(cm):
    return next(n for n in cm.graph.nodes if n.op in ("Conv", "onnxcc.FusedConv", "QLinearConv")
                and int(n.attrs.get("group") or 1) > 1)


@pytest.mark.parametrize("stride", [1, 2])
def test_float_depthwise_in_place_on_cortex_m4(rng, stride):
    model = _block(rng, stride=stride)
    cm = onnxcc.compile(model, "cortex-m4", max_recompute=0)
    p, dw = cm.graph.meta["memory_plan"], _dw(cm)
    assert dw.name in p.inplace
    assert p.buffers[dw.outputs[0].name].offset == p.buffers[dw.inputs[0].name].offset
    check_plan(cm.graph)
    # the expansion (32x16x16 floats) and the depthwise output no longer live side by side:
    # the arena holds one channel's plane of scratch instead of the output
    apart, plane_bytes = plan(cm.graph, 16).arena_size, (16 // stride) ** 2 * 4
    assert cm.arena_size <= apart - dw.outputs[0].type.nbytes + plane_bytes
    kernel = next(k for k in cm.program.kernels if k.node == dw.name)
    # the plane is kernel scratch, which microcontroller targets keep in the arena
    assert kernel.inplace and [(b.shape, b.space) for b in kernel.outputs if b.name == "plane"] \
        == [(((16 // stride) ** 2,), "arena")]
    x = rng.standard_normal((1, 4, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(cm.run({"x": x})["y"], ort_run(model, {"x": x})["y"],
                               rtol=1e-5, atol=1e-5)



@pytest.mark.parametrize("quantized", [False, True])
def test_in_place_depthwise_with_a_single_output_position(rng, quantized):
    """A 2x2 map under a 3x3 stride-2 depthwise Conv: one output position, so the plane's copy
    back is no loop (found by fuzzing: it was a loop over the constant 0, refused by verify)."""
    model = _block(rng, C=6, size=2, stride=2)
    x = rng.standard_normal((1, 4, 2, 2)).astype(np.float32)
    q = onnxcc.Int8(calibration=[{"x": x}]) if quantized else None
    cm = onnxcc.compile(model, "cortex-m4", quantize=q, max_recompute=0)
    assert _dw(cm).name in cm.graph.meta["memory_plan"].inplace
    if quantized:
        host = onnxcc.compile(model, "host", quantize=q)
        assert cm.run({"x": x})["y"].tobytes() == host.run({"x": x})["y"].tobytes()
    else:
        np.testing.assert_allclose(cm.run({"x": x})["y"], ort_run(model, {"x": x})["y"],
                                   rtol=1e-5, atol=1e-5)

def test_input_read_later_is_not_overwritten(rng):
    model = _block(rng, residual=True)
    cm = onnxcc.compile(model, "cortex-m4", max_recompute=0)
    assert _dw(cm).name not in cm.graph.meta["memory_plan"].inplace
    x = rng.standard_normal((1, 4, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(cm.run({"x": x})["y"], ort_run(model, {"x": x})["y"],
                               rtol=1e-5, atol=1e-5)


def test_host_and_fpga_targets_keep_depthwise_apart(rng):
    cm = onnxcc.compile(_block(rng), "host")
    assert _dw(cm).name not in cm.graph.meta["memory_plan"].inplace


@pytest.mark.parametrize("k", [3, 5])
def test_int8_depthwise_in_place_bit_exact(rng, k):
    """3x3: planned in place; 5x5 with pads 2 has 25 border runs, more than the integer scalar
    nest specializes, so it stays apart (and its lowering would refuse an aliased plan)."""
    model = _block(rng, k=k)
    q = onnxcc.Int8(calibration={"x": rng.standard_normal((4, 1, 4, 16, 16)).astype("f4")})
    m4 = onnxcc.compile(model, "cortex-m4", quantize=q, max_recompute=0)
    host = onnxcc.compile(model, "host", quantize=q)
    dw = _dw(m4)
    assert dw.op == "QLinearConv"
    assert (dw.name in m4.graph.meta["memory_plan"].inplace) == (k == 3)
    x = rng.standard_normal((1, 4, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(m4.run({"x": x})["y"], host.run({"x": x})["y"])


@QEMU
def test_in_place_block_on_emulated_cortex_m4(rng):
    from onnxcc.runtime import qemu

    model = _block(rng, stride=2)
    cm = onnxcc.compile(model, "cortex-m4", max_recompute=0)
    assert _dw(cm).name in cm.graph.meta["memory_plan"].inplace
    x = rng.standard_normal((1, 4, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(qemu.run_on_qemu(cm, {"x": x})["y"], ort_run(model, {"x": x})["y"],
                               rtol=1e-5, atol=1e-5)


def test_size_mode_computes_in_place_in_its_plain_nest(rng):
    model = _block(rng, stride=2)
    cm = onnxcc.compile(model, "cortex-m4", max_recompute=0, optimize="size")
    dw = _dw(cm)
    assert dw.name in cm.graph.meta["memory_plan"].inplace
    kernel = next(k for k in cm.program.kernels if k.node == dw.name)
    assert kernel.inplace and "size mode" in kernel.comment
    x = rng.standard_normal((1, 4, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(cm.run({"x": x})["y"], ort_run(model, {"x": x})["y"],
                               rtol=1e-5, atol=1e-5)


def test_int8_size_mode_computes_in_place_in_its_plain_nest(rng):
    model = _block(rng)
    q = onnxcc.Int8(calibration={"x": rng.standard_normal((4, 1, 4, 16, 16)).astype("f4")})
    cm = onnxcc.compile(model, "cortex-m4", quantize=q, max_recompute=0, optimize="size")
    dw = _dw(cm)
    assert dw.name in cm.graph.meta["memory_plan"].inplace
    kernel = next(k for k in cm.program.kernels if k.node == dw.name)
    assert kernel.inplace and "one accumulator per output" not in kernel.comment  # not the scalar nest
    x = rng.standard_normal((1, 4, 16, 16)).astype(np.float32)
    host = onnxcc.compile(model, "host", quantize=q)
    np.testing.assert_array_equal(cm.run({"x": x})["y"], host.run({"x": x})["y"])
