"""The C emitter: file set, header API, untrusted names, determinism, compilers, status codes."""

import shutil
import subprocess

import numpy as np
import pytest

from builders import make_model, ort_run
import onnxcc
from onnxcc.errors import OutputError, UnsupportedOpError
from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS

EVIL = ['in"put\\\n*/ ??= é', "int", "return */ /*", "a-b", "a_b", "??/", "main"]


def _evil_model(rng):
    x, c, t, o1, o2, _, _ = EVIL
    b = rng.standard_normal((3,)).astype(np.float32)
    return make_model([("Relu", [x], [t], ), ("Add", [t, c], [o1]), ("Sigmoid", [t], [o2])],
                      {x: (2, 3)}, {o1: (2, 3), o2: (2, 3)}, {c: b}, name="we/ird*/model")


def test_library_files_and_header_api(rng):
    cm = onnxcc.compile(_evil_model(rng), "host", name="net")
    assert cm.files == ["CMakeLists.txt", "net.c", "net.cmake", "net.h", "net.json", "net.mk", "net_weights.bin", "net_weights.c",
                        "onnxcc_rt.h"]
    h = (cm.lib_dir / "net.h").read_text()
    for macro in ("NET_ARENA_SIZE", "NET_ARENA_ALIGN", "NET_WEIGHTS_SIZE", "NET_ONNXCC_VERSION",
                  "NET_MODEL_SHA256", "NET_WEIGHTS_ATTR", "NET_ARENA_ATTR", "NET_INPUT_0_SHAPE",
                  "NET_OUTPUT_1_BYTES", "NET_ARENA_TOO_SMALL", "NET_ARENA_MISALIGNED", "NET_NULL_ARG",
                  'extern "C"', "net_run_static", "net_inputs[1]"):
        assert macro in h, macro
    assert f"#define NET_ARENA_SIZE {cm.arena_size}u" in h


def test_untrusted_names_never_reach_c_unescaped(rng):
    m = _evil_model(rng)
    cm = onnxcc.compile(m, "host")
    c_text = "".join((cm.lib_dir / f).read_text() for f in cm.files if f.endswith((".c", ".h")))
    assert "??=" not in c_text and "??/" not in c_text and "é" not in c_text
    for f in cm.files:
        if f.endswith((".c", ".h")):
            body = (cm.lib_dir / f).read_text()
            # every comment closes where it should: no stray */ from a name
            assert body.count("/*") == body.count("*/"), f
    x = rng.standard_normal((2, 3)).astype(np.float32)
    got = cm.run({EVIL[0]: x}, sanitize=False)
    want = ort_run(m, {EVIL[0]: x})
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6)


def test_output_is_byte_deterministic(rng, tmp_path):
    m = _evil_model(rng)
    a = onnxcc.compile(m, "host").save(tmp_path / "a")
    b = onnxcc.compile(m, "host").save(tmp_path / "b")
    for f in sorted(p.name for p in a.iterdir()):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


@pytest.mark.parametrize("cc,flags", [("gcc", ()), ("clang", ()), ("arm-none-eabi-gcc", CORTEX_M4_FLAGS)])
def test_compiles_warning_free(rng, cc, flags):
    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    cm = onnxcc.compile(_evil_model(rng), "cortex-m4" if "arm" in cc else "host")
    m = cm.mmap["c_prefix"]
    for src in (f"{m}.c", f"{m}_weights.c"):
        subprocess.run([cc, *WARN_FLAGS, *flags, "-O2", f"-I{cm.lib_dir}", "-c", str(cm.lib_dir / src),
                        "-o", "/dev/null"], check=True)


STATUS_C = r"""
#include <stdio.h>
#include "{m}.h"
static float x[6], y0[6];
static union {{ unsigned char b[{n} + 64]; double d; }} arena;
int main(void) {{
    int s1 = {m}_run(arena.b, {M}_ARENA_SIZE - 1, x, y0);
    int s2 = {m}_run(arena.b + 1, {M}_ARENA_SIZE, x, y0);
    int s3 = {m}_run(arena.b, {M}_ARENA_SIZE, NULL, y0);
    int s4 = {m}_run(arena.b, {M}_ARENA_SIZE, x, y0);
    int s5 = {m}_run_static(x, y0);
    printf("%d %d %d %d %d\n", s1, s2, s3, s4, s5);
    return 0;
}}
"""


def test_status_codes(tmp_path):
    m = make_model([("Softmax", ["x"], ["t"]), ("Softmax", ["t"], ["y0"])], {"x": (2, 3)}, {"y0": (2, 3)})
    cm = onnxcc.compile(m, "host", name="st")
    assert cm.arena_size > 0
    (cm.lib_dir / "status_main.c").write_text(STATUS_C.format(m="st", M="ST", n=cm.arena_size))
    exe = tmp_path / "status"
    subprocess.run(["cc", *WARN_FLAGS, "-DST_STATIC_ARENA", f"-I{cm.lib_dir}", str(cm.lib_dir / "st.c"),
                    str(cm.lib_dir / "st_weights.c"), str(cm.lib_dir / "status_main.c"), "-o", str(exe),
                    "-lm"], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2", "3", "1", "0", "0"]


def test_save_refuses_unwritable_folder_and_leaves_nothing(rng, tmp_path):
    cm = onnxcc.compile(_evil_model(rng), "host")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        cm.save(blocker / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_unsupported_dtype_is_reported_by_node():
    m = make_model([("Relu", ["x"], ["y"])], {"x": (2,)}, {"y": (2,)}, dtype=10)  # float16
    with pytest.raises(UnsupportedOpError, match="node 'n0' \\(Relu\\): dtype float16"):
        onnxcc.compile(m, "host", disable_passes=["float16_compute"])   # left uncast


def test_splat_weights_are_never_materialized():
    from onnx import TensorProto, helper

    shape = np.array([1000, 1000], np.int64)
    m = make_model([("ConstantOfShape", ["s"], ["w"], {"value": helper.make_tensor("v", TensorProto.FLOAT, [1], [0.25])}),
                    ("Add", ["x", "w"], ["y"])], {"x": (1000, 1000)}, {"y": (1000, 1000)}, {"s": shape})
    cm = onnxcc.compile(m, "host")
    assert cm.weights_size < 64
    x = np.ones((1000, 1000), np.float32)
    np.testing.assert_array_equal(cm.run({"x": x})["y"], x + 0.25)
