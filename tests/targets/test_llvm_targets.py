"""Targets of the LLVM back end through the public API: ``cpu`` (this machine, JIT-run and saved
as an object beside the C back end's header), and the object-only cross targets."""

import json
import re
import shutil
import subprocess

import numpy as np
import onnx
import onnx.numpy_helper
import pytest

import onnxcc
from builders import make_model, ort_run
from onnxcc.errors import UnsupportedOpError
from onnxcc.targets import get_target


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _conv_model(rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    fc = rng.standard_normal((4 * 6 * 6, 5)).astype(np.float32) * 0.1
    return make_model([("Conv", ["x", "w", "b"], ["c"], {"pads": [1, 1, 1, 1]}),
                       ("Relu", ["c"], ["r"]),
                       ("MaxPool", ["r"], ["p"], {"kernel_shape": [2, 2], "strides": [2, 2]}),
                       ("Flatten", ["p"], ["f"]),
                       ("MatMul", ["f", "fc"], ["l"]),
                       ("Softmax", ["l"], ["y"], {"axis": 1})],
                      {"x": (1, 3, 12, 12)}, {"y": (1, 5)}, {"w": w, "b": b, "fc": fc},
                      name="convnet")


def test_cpu_runs_a_cnn_like_onnxruntime_and_ships_an_object(rng):
    m = _conv_model(rng)
    x = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    cm = onnxcc.compile(m, target="cpu")
    got = cm.run({"x": x})["y"]
    np.testing.assert_allclose(got, ort_run(m, {"x": x})["y"], rtol=1e-5, atol=1e-6)
    assert "convnet.o" in cm.files and "convnet.h" in cm.files
    assert "convnet_weights.c" not in cm.files      # the weights are inside the object
    assert cm.mmap["backend"] == "llvm" and cm.mmap["weights"]["format"] == "object"
    assert cm.mmap["object"]["cpu"] != "native"     # resolved by LLVM's host detection
    assert cm.weights_size == sum(onnx.numpy_helper.to_array(t).nbytes for t in m.graph.initializer)
    assert len(cm.program.kernels) >= 4


def test_saved_cpu_library_links_into_a_c_program_through_the_same_header(tmp_path, rng):
    """The user's side: the saved header, <m>.c and <m>.o compiled into a C program with the
    host compiler give the outputs run() gave (run() executed that very object)."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    m = _conv_model(rng)
    x = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    cm = onnxcc.compile(m, target="cpu")
    want = cm.run({"x": x})["y"]
    out = tmp_path / "lib"
    cm.save(out)
    saved = json.loads((out / "convnet.json").read_text())
    assert "convnet.o" in saved["files"]
    vals = ", ".join(f"{v!r}f" for v in x.reshape(-1).tolist())
    (tmp_path / "main.c").write_text(f"""
#include <stdio.h>
#include "convnet.h"
static const float x[CONVNET_INPUT_0_SIZE] = {{ {vals} }};
static unsigned char arena[CONVNET_ARENA_SIZE + CONVNET_ARENA_ALIGN];
int main(void) {{
    float y[CONVNET_OUTPUT_0_SIZE];
    unsigned char *a = arena + (CONVNET_ARENA_ALIGN - (size_t)arena % CONVNET_ARENA_ALIGN) % CONVNET_ARENA_ALIGN;
    convnet_status s = convnet_run(a, CONVNET_ARENA_SIZE, x, y);
    if (s != CONVNET_OK) return 10 + (int)s;
    if (convnet_run(a, CONVNET_ARENA_SIZE - 1, x, y) != CONVNET_ARENA_TOO_SMALL) return 20;
    if (convnet_run(a, CONVNET_ARENA_SIZE, NULL, y) != CONVNET_NULL_ARG) return 21;
    if (convnet_outputs[0].rank != 2) return 22;
    for (unsigned i = 0; i < CONVNET_OUTPUT_0_SIZE; ++i) printf("%a\\n", (double)y[i]);
    return 0;
}}
""")
    exe = tmp_path / "main"
    r = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{out}",
                        str(tmp_path / "main.c"), str(out / "convnet.c"), str(out / "convnet.o"),
                        "-lm", "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    p = subprocess.run([str(exe)], capture_output=True, text=True)
    assert p.returncode == 0, p.returncode
    got = np.array([float.fromhex(v) for v in p.stdout.split()], np.float32).reshape(want.shape)
    np.testing.assert_array_equal(got, want)


def test_cpu_library_through_a_shared_object_and_under_sanitizers(rng):
    """run(cc=...) links <m>.c and <m>.o into a shared object with that compiler; sanitize=True
    links the executable harness under ASan/UBSan: both agree with the JIT."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    m = _conv_model(rng)
    x = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    cm = onnxcc.compile(m, target="cpu")
    want = cm.run({"x": x})["y"]
    np.testing.assert_array_equal(cm.run({"x": x}, cc="cc")["y"], want)
    np.testing.assert_array_equal(cm.run({"x": x}, sanitize=True)["y"], want)


@pytest.mark.parametrize("name,machine", [("x86-64-v3", 62), ("x86-64-v2", 62), ("x86-64-v4", 62),
                                          ("aarch64", 183)])
def test_cross_targets_write_objects_for_their_machine(name, machine, rng):
    """The object is for the target's machine (ELF e_machine: 62 x86-64, 183 AArch64);
    run() JIT-compiles the same Program for this machine and agrees with onnxruntime."""
    m = _conv_model(rng)
    x = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    cm = onnxcc.compile(m, target=name)
    obj = (cm.lib_dir / "convnet.o").read_bytes()
    assert obj[:4] == b"\x7fELF" and int.from_bytes(obj[18:20], "little") == machine
    assert cm.mmap["object"]["cpu"] == get_target(name).cpu
    np.testing.assert_allclose(cm.run({"x": x})["y"], ort_run(m, {"x": x})["y"], rtol=1e-5,
                               atol=1e-6)


def test_x86_64_v3_object_uses_fma_and_avx2():
    """x86-64-v3 names AVX2 and FMA: the object's kernels use 256-bit FMA instructions."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("no objdump")
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    m = make_model([("MatMul", ["x", "w"], ["y"])], {"x": (8, 64)}, {"y": (8, 64)}, {"w": w})
    cm = onnxcc.compile(m, target="x86-64-v3")
    text = subprocess.run([objdump, "-d", str(cm.lib_dir / f"{cm.mmap['c_prefix']}.o")],
                          capture_output=True, text=True, check=True).stdout
    assert "vfmadd" in text and "%ymm" in text


def test_llvm_target_reports_unsupported_nodes_by_name():
    """A node the loop IR cannot lower is refused before any code, naming node, op and target."""
    m = make_model([("Relu", ["x"], ["t"]), ("Cosh", ["t"], ["y"])], {"x": (4,)}, {"y": (4,)},
                   dtype=10)   # float16, left uncast: kernels only load, store and cast it
    with pytest.raises(UnsupportedOpError, match=r"for target 'cpu'(.|\n)*node 'n1' "
                       r"\(onnxcc.FusedElementwise\): dtype float16 of 'x'"):
        onnxcc.compile(m, target="cpu", disable_passes=["float16_compute"])


def test_targets_name_their_back_end():
    assert get_target("host").backend == "c" and get_target("cortex-m4").backend == "c"
    for name in ("cpu", "x86-64-v2", "x86-64-v3", "x86-64-v4", "aarch64"):
        t = get_target(name)
        assert t.backend == "llvm" and "LLVM back end" in t.describe()


def test_saving_an_object_never_overwrites_a_users_file(tmp_path, rng):
    """A user's own ``convnet.o`` in the output folder stops the save (folder unchanged);
    switching a folder from cpu to host removes onnxcc's own object and nothing else."""
    from onnxcc.errors import OutputError

    m = _conv_model(rng)
    out = tmp_path / "fw"
    out.mkdir()
    (out / "convnet.o").write_bytes(b"mine")
    (out / "main.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(OutputError, match="convnet.o"):
        onnxcc.compile(m, target="cpu").save(out)
    assert sorted(p.name for p in out.iterdir()) == ["convnet.o", "main.c"]
    (out / "convnet.o").unlink()
    onnxcc.compile(m, target="cpu").save(out)
    assert (out / "convnet.o").exists()
    onnxcc.compile(m, target="host").save(out)
    names = sorted(p.name for p in out.iterdir())
    assert "convnet.o" not in names and "convnet_weights.c" in names and "main.c" in names


def test_pointwise_conv_on_a_small_plane_is_one_spatial_loop_and_blocked(rng):
    """A 1x1 convolution over a 3x3 plane: on host (no register tile) a matrix product over the
    9 positions, 4 output channels per pass; on cpu, with a vector register file, register
    tiles over the 9 positions as one axis. Both agree with onnxruntime."""
    from onnxcc.codegen.loops import program_text

    w = rng.standard_normal((16, 32, 1, 1)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    m = make_model([("Conv", ["x", "w", "b"], ["c"]), ("Relu", ["c"], ["y"])],
                   {"x": (1, 32, 3, 3)}, {"y": (1, 16, 3, 3)}, {"w": w, "b": b})
    x = rng.standard_normal((1, 32, 3, 3)).astype(np.float32)
    want = ort_run(m, {"x": x})["y"]
    host = onnxcc.compile(m, target="host")
    text = program_text(host.program)
    assert "x:f32[1,32,9]" in text and "1x1: pixels as one axis" in text
    assert "blocks of 4 output channels" in text and "for mm in 0..4:" in text
    np.testing.assert_allclose(host.run({"x": x})["y"], want, rtol=1e-5, atol=1e-5)
    cm = onnxcc.compile(m, target="cpu")
    if cm.target.register_tile:
        # 32 multiply-adds per output: a short reduction (LowerCtx.register_tile)
        rows = cm.target.tile_rows(min(cm.target.register_tile[0],
                                       cm.target.short_reduction_rows), 9)
        assert f"register tiles of {rows} positions x 16 output channels" in \
            program_text(cm.program)
        assert f"for pt in 0..{-(-9 // rows)}:" in program_text(cm.program)   # the 9 positions
    np.testing.assert_allclose(cm.run({"x": x})["y"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    dict(kernel_shape=[2, 3], strides=[1, 2], ceil_mode=1),
    dict(kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
])
def test_average_pool_rows_are_vectorized_on_cpu(rng, attrs):
    """On cpu the interior rows of AveragePool carry a vectorize hint (LLVM left them scalar);
    the results are onnxruntime's, borders and divisors included."""
    from onnxcc.codegen.loops import program_text

    m = make_model([("AveragePool", ["x"], ["y"], attrs)], {"x": (1, 3, 17, 20)}, {"y": None})
    x = rng.standard_normal((1, 3, 17, 20)).astype(np.float32)
    cm = onnxcc.compile(m, target="cpu")
    if cm.target.register_tile:
        assert re.search(r"for ow in \d+\.\.\d+ vectorized\(\d+\):", program_text(cm.program))
    np.testing.assert_allclose(cm.run({"x": x})["y"], ort_run(m, {"x": x})["y"], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("k,strides,mult,size", [
    (3, [2, 2], 1, 16),     # MobileNet's stride-2 depthwise layers
    (5, [2, 2], 1, 16),     # EfficientNet's / MobileNetV3's 5x5
    (3, [1, 2], 2, 15),     # a depth multiplier, an odd width (a short last phase)
])
def test_strided_depthwise_on_cpu_reads_a_deinterleaved_plane_without_llvm_warnings(
        rng, capfd, k, strides, mult, size):
    """A depthwise Conv with column stride 2 on cpu: each channel's padded plane is stored
    de-interleaved (even columns, then odd), so every tap reads its row unit-stride and LLVM
    vectorizes the forced rows; with the plane read at stride 2 LLVM printed "loop not
    vectorized" on stderr (fd 2) and ran the rows scalar. Results are onnxruntime's."""
    from onnxcc.codegen.loops import program_text

    C = 16
    w = rng.standard_normal((C * mult, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(C * mult).astype(np.float32)
    m = make_model([("Conv", ["x", "w", "b"], ["c"],
                     {"group": C, "pads": [k // 2] * 4, "strides": strides}),
                    ("Relu", ["c"], ["y"])],
                   {"x": (1, C, size, size)}, {"y": None}, {"w": w, "b": b})
    x = rng.standard_normal((1, C, size, size)).astype(np.float32)
    capfd.readouterr()
    cm = onnxcc.compile(m, target="cpu")
    got = cm.run({"x": x})["y"]
    err = capfd.readouterr().err
    assert "loop not vectorized" not in err and "warning" not in err, err
    np.testing.assert_allclose(got, ort_run(m, {"x": x})["y"], rtol=1e-5, atol=1e-5)
    if cm.target.register_tile:
        wp = size + 2 * (k // 2)
        wq = -(-wp // 2)
        text = program_text(cm.program)
        assert (f"its columns de-interleaved into 2 phases of {wq} per row (rows of {2 * wq})"
                in text), text
        assert re.search(r"for ow in 0\.\.\d+ vectorized\(\d+\):", text)
