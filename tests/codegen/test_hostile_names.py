"""Hostile names (issue 9): tensor, node and model names with quotes, backslashes, newlines, ``*/``,
``??=``, ``#define``, C keywords, names equal after sanitizing or differing only in case, non-ASCII,
10,000-character names and names equal to generated symbols. The library compiles warning-free
(also with -Wshadow) with gcc, clang and arm-none-eabi-gcc, and runs correctly on the host (gcc,
clang, AddressSanitizer) and on the emulated Cortex-M4, against onnxruntime."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import IR_VERSION, ort_run
import onnxcc
from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS

LONG = "n" * 10000
HOSTILE = [
    'q"uote', "back\\slash", "new\nline", "end*/comment", "/*open", "??=trigraph", "??/", "#define X 1",
    "int", "return", "_Bool", "a-b", "a_b", "a b", "X", "x", "é", "è", "名前", "\u00a0", LONG, LONG + "m",
    # generated symbols and names the generated code uses
    "w0", "s0", "k0_relu", "k1_add", "in_w0", "out_x", "run", "g_run", "inputs", "a", "arena",
    "arena_size", "i", "y0", "x0", "scratch", "memcpy", "NAN", "INFINITY", "size_t", "onnxcc_rt",
    "ONNXCC_OK", "main", "G_OK", "__reserved", "_Upper",
]
MODEL_NAMES = ["g", "in", "onnxcc_rt", "int", "math", "m", "Net", 'we"ird\n*/??=#define', "é", LONG]


def hostile_model(names: list[str], model_name: str) -> onnx.ModelProto:
    """A chain over inputs named ``names``: Relu of the first (kernel k0_relu), + a scalar constant
    (a splat), * a weight tensor, then + each other input; three outputs with hostile names and
    every node named hostilely (each Add after its input). Each intermediate has a hostile name
    too; initializers are named ``const s0`` / ``const w0`` (graph inputs take ``s0``/``w0``)."""
    rng = np.random.default_rng(1)
    shape = [2, 3]
    first, rest = names[0], names[1:]
    nodes, inits = [], []
    cur = f"{first}\x01relu"
    nodes.append(helper.make_node("Relu", [first], [cur], name="k0_relu */"))
    inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "const s0"))
    inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), "const w0"))
    nodes.append(helper.make_node("Add", [cur, "const s0"], ["k1_add\t"], name="*/ node ??= \\"))
    nodes.append(helper.make_node("Mul", ["k1_add\t", "const w0"], ["in_w0 mul"], name='"#define'))
    cur = "in_w0 mul"
    for k, n in enumerate(rest):
        out = f"sum {k} {n[:20]}\n"
        nodes.append(helper.make_node("Add", [cur, n], [out], name=n))
        cur = out
    nodes.append(helper.make_node("Sigmoid", [cur], ["out_y"], name="while"))
    nodes.append(helper.make_node("Neg", [cur], [LONG + "out"], name=LONG + "neg"))
    nodes.append(helper.make_node("Identity", ["k1_add\t"], ["Out_Y"], name="Identity"))
    g = helper.make_graph(
        nodes, model_name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in names],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("out_y", LONG + "out", "Out_Y")],
        inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m)
    return m


def feeds_for(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal((2, 3)).astype(np.float32) for i in model.graph.input}


def check(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=repr(k[:40]))


@pytest.fixture(scope="module")
def hostile():
    model = hostile_model(HOSTILE, "graph */ name")
    return model, feeds_for(model)


@pytest.mark.parametrize("model_name", MODEL_NAMES, ids=lambda s: repr(s[:12]))
def test_hostile_model_names(model_name):
    model = hostile_model(["w0", "s0", "a_b", "a-b", "X", "x"], model_name)
    feeds = feeds_for(model, 1)
    cm = onnxcc.compile(model, "host", name=model_name)
    check(cm.run(feeds), ort_run(model, feeds))


@pytest.fixture(scope="module")
def host_lib(hostile):
    model, _ = hostile
    return onnxcc.compile(model, "host", name="in")


@pytest.fixture(scope="module")
def m4_lib(hostile):
    model, _ = hostile
    return onnxcc.compile(model, "cortex-m4", name="in")


def test_every_param_is_distinct_and_no_name_leaks(host_lib):
    cm = host_lib
    params = [t["param"] for t in cm.mmap["inputs"] + cm.mmap["outputs"]]
    assert len(set(params)) == len(params) == len(HOSTILE) + 3
    assert all(len(p) <= 63 and "__" not in p and not p.startswith("_") for p in params)
    for f in cm.files:
        if f.endswith((".c", ".h")):
            body = (cm.lib_dir / f).read_text()
            assert body.isascii() and "??" not in body, f
            assert body.count("/*") == body.count("*/"), f
            assert "\n#define X" not in body     # only ever inside a string literal


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_hostile_names_run_on_the_host(hostile, host_lib, cc):
    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    model, feeds = hostile
    check(host_lib.run(feeds, cc=cc), ort_run(model, feeds))


@pytest.mark.slow
def test_hostile_names_run_under_address_sanitizer(hostile, host_lib):
    model, feeds = hostile
    check(host_lib.run(feeds, sanitize=True), ort_run(model, feeds))


@pytest.mark.parametrize("cc,flags,which", [
    ("gcc", (), "host"), ("clang", (), "host"), ("gcc", ("-std=c11",), "host"),
    ("arm-none-eabi-gcc", CORTEX_M4_FLAGS, "m4")])
def test_hostile_names_compile_warning_free_with_wshadow(host_lib, m4_lib, cc, flags, which):
    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    cm = m4_lib if which == "m4" else host_lib
    m = cm.mmap["c_prefix"]
    for static in ((), (f"-D{m.upper()}_STATIC_ARENA",)):
        for src in (f"{m}.c", f"{m}_weights.c"):
            subprocess.run([cc, *WARN_FLAGS, *flags, "-Wshadow", *static, "-O2", f"-I{cm.lib_dir}",
                            f"-Wa,-I{cm.lib_dir}", "-c", str(cm.lib_dir / src), "-o", "/dev/null"],
                           check=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_hostile_names_run_on_the_emulated_m4(hostile, m4_lib):
    from onnxcc.runtime import qemu

    model, feeds = hostile
    check(qemu.run_on_qemu(m4_lib, feeds), ort_run(model, feeds))


@pytest.mark.parametrize("target", ["cpu", "aarch64"])
@pytest.mark.parametrize("model_name", MODEL_NAMES, ids=lambda s: repr(s[:12]))
def test_hostile_names_on_the_llvm_back_end(model_name, target):
    """The LLVM targets: hostile model and tensor names reach neither the IR text unescaped nor
    the object's symbols (only ``<m>_run`` is exported); ``run()`` agrees with onnxruntime."""
    model = hostile_model(["w0", "s0", "a_b", "a-b", "X", "x", 'q"uote', "new\nline"], model_name)
    feeds = feeds_for(model, 2)
    cm = onnxcc.compile(model, target, name=model_name)
    check(cm.run(feeds), ort_run(model, feeds))
    obj = (cm.lib_dir / f"{cm.mmap['c_prefix']}.o").read_bytes()
    assert f"{cm.mmap['c_prefix']}_run".encode() in obj
    assert b"new\nline" not in obj and b'q"uote' not in obj
