"""Names in generated C (issue 9): the Namer's rules, each reported collision end to end, the static
arena's alignment, and the runtime's requantize helper against a numpy model of gemmlowp."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_model, ort_run, run_c_requantize
import onnxcc
from onnxcc.codegen.c.emit import RT_HEADER
from onnxcc.codegen.names import (C_KEYWORDS, CXX_RULES, LIBC_NAMES, MAX_PREFIX, Namer, sanitize)
from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and arm-none-eabi-gcc")

#: every tail onnxcc's C code puts after ``<m>_`` (kernels, weights, splats, tables, functions)
OWN_TAILS = [("run",), ("run_static",), ("status",), ("inputs",), ("outputs",), ("static_arena",),
             ("weights_blob",), ("no_weights",), ("w0",), ("w12",), ("s0",), ("s3",), ("k0", "Relu"),
             ("k0", "MatMul"), ("input", 0, "shape"), ("output", 1, "shape")]


# -- the Namer -------------------------------------------------------------------------------

@pytest.mark.parametrize("name,prefix", [
    ("net", "net"), ("Net", "net"), ("in", "in"), ("a-b c", "a_b_c"), ("__x__y__", "x_y"),
    ("12ab", "model_12ab"), ("", "model"), ("é-net", "e_net"),
    ("onnxcc_rt", "model_onnxcc_rt"), ("ONNXCC", "model_onnxcc"), ("onnxcc_sh", "model_onnxcc_sh"),
    ("math", "model_math"), ("stdint", "model_stdint"), ("string", "model_string"),
    ("m", "model_m"), ("all", "model_all"), ("startup", "model_startup"),
    ("int", "model_int"), ("Bool", "model_bool"), ("memcpy", "model_memcpy"), ("NAN", "model_nan"),
])
def test_model_prefix_rules(name, prefix):
    n = Namer(name)
    assert n.prefix == prefix
    assert n.macro_prefix == prefix.upper()
    assert bool(n.renamed) == (prefix.startswith("model_") and name not in ("", "12ab"))


def test_long_model_names_are_cut_with_a_stable_hash():
    a, b = Namer("x" * 100), Namer("x" * 99 + "y")
    assert len(a.prefix) == len(b.prefix) == MAX_PREFIX and a.prefix != b.prefix
    assert a.prefix == Namer("x" * 100).prefix                 # stable
    assert re.fullmatch(r"x+_[0-9a-f]{6}", a.prefix)
    assert Namer("squeezenet1_1_quantized").prefix.startswith("squeezenet1_")
    assert Namer("x" * MAX_PREFIX).prefix == "x" * MAX_PREFIX   # at the limit: kept
    # every exported symbol fits in C99's 31 significant characters
    for tail in ("run", "run_static", "inputs", "outputs", "weights_blob", "w123456"):
        assert len(a.own(tail, external=True)) <= 31


def test_user_names_and_own_symbols_are_disjoint_for_the_reported_cases():
    n = Namer("in")
    assert n.user("w0", "in") == "in_in_w0" != n.own("w0")
    assert n.user("s0", "in") == "in_in_s0" != n.own("s0")
    assert n.user("k0_relu", "in") == "in_in_k0_relu" != n.own("k0", "Relu")
    assert Namer("net").user("w0", "in") == "in_w0"            # the short form when it is free
    n = Namer("in_x")
    assert n.user("x_w0", "in") == "in_x_in_x_w0"
    assert n.user("x", "in") == "in_x_in_x"                   # not the prefix itself
    n = Namer("in_x_2")
    assert [n.user("x", "in"), n.user("X", "in")] == ["in_x", "in_x_2_in_x"]
    with pytest.raises(ValueError, match="user space"):
        n.own("in", "x")


def test_user_names_are_uniquified_deterministically():
    n = Namer("net")
    got = [n.user(s, "in") for s in ["a-b", "a_b", "X", "x", "é", "è", "x_2", "int", "a b"]]
    assert got == ["in_a_b", "in_a_b_2", "in_x", "in_x_2", "in_e", "in_e_2", "in_x_2_2", "in_int",
                   "in_a_b_3"]
    n2 = Namer("net")
    assert [n2.user(s, "in") for s in ["a-b", "a_b", "X", "x", "é", "è", "x_2", "int", "a b"]] == got


def test_user_names_are_cut_to_63_with_a_stable_hash():
    n = Namer("net")
    a, b = n.user("n" * 10000, "out"), n.user("n" * 10000 + "m", "out")
    assert len(a) == len(b) == 63 and a != b
    assert a == Namer("net").user("n" * 10000, "out")


def test_macros_and_the_cxx_rules():
    n = Namer("net")
    assert n.macro("input", 0, "name") == "NET_INPUT_0_NAME"
    assert n.macro("H") == "NET_H"
    assert Namer("class").prefix == "class"                   # fine in C
    assert Namer("class", CXX_RULES).prefix == "model_class"  # not in C++
    assert sanitize("1x", "t") == "t_1x" and sanitize("\n*/", "t") == "t"


_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40) | \
    st.sampled_from(["w0", "s0", "k0_relu", "in", "out", "in_w0", "onnxcc_rt", "run", "int", "main",
                     "memcpy", "__x", "_X", "a__b", "x" * 200])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(model=_names, tensors=st.lists(st.tuples(_names, st.sampled_from(["in", "out"])), max_size=12))
def test_namer_properties(model, tensors):
    n = Namer(model)
    own = {n.own(*t, external=t[0] in ("run", "run_static", "inputs", "outputs", "weights_blob"))
           for t in OWN_TAILS}
    users = [n.user(name, role) for name, role in tensors]
    assert len(set(users)) == len(users)                       # unique
    assert not set(users) & own                                # disjoint from onnxcc's symbols
    m = n.prefix
    for u in users:                                            # ... and from the prefix's space
        assert u != m and (not u.startswith(f"{m}_") or u.startswith((f"{m}_in_", f"{m}_out_")))
    ident = re.compile(r"[a-z][a-z0-9_]*")
    for s in users + sorted(own) + [n.prefix]:
        assert ident.fullmatch(s), s
        assert "__" not in s and not s.endswith("_") and len(s) <= 63
        assert s not in C_KEYWORDS and s not in LIBC_NAMES
        assert not s.startswith("onnxcc")
    assert len(n.prefix) <= MAX_PREFIX and n.macro_prefix == n.prefix.upper()


# -- the reported collisions, end to end ------------------------------------------------------

def _w0_model():
    """``y = w0 @ W``: an input named ``w0`` beside a weight array (the issue's case)."""
    w = np.arange(16, dtype=np.float32).reshape(4, 4)
    return make_model([("MatMul", ["w0", "W"], ["y"])], {"w0": (1, 4)}, {"y": (1, 4)}, {"W": w})


@pytest.fixture(scope="module")
def in_onnx(tmp_path_factory):
    """The issue's model saved as ``in.onnx``, compiled for cortex-m4."""
    d = tmp_path_factory.mktemp("in")
    model = _w0_model()
    onnx.save(model, str(d / "in.onnx"))
    return model, onnxcc.compile(str(d / "in.onnx"), "cortex-m4")


def test_input_w0_in_model_in_keeps_its_own_name(in_onnx):
    _, cm = in_onnx
    assert cm.mmap["c_prefix"] == "in" and cm.mmap["inputs"][0]["param"] == "in_in_w0"
    assert "in_k0_matmul(out_y, in_in_w0, in_w0);" in (cm.lib_dir / "in.c").read_text()


@pytest.mark.parametrize("sanitize_", [False, True], ids=["host", "asan"])
def test_input_w0_in_model_in_runs_correctly_on_the_host(in_onnx, sanitize_):
    model, cm = in_onnx
    x = np.array([[0, 1, 0, 0]], np.float32)
    want = ort_run(model, {"w0": x})["y"]
    np.testing.assert_array_equal(want, [[4, 5, 6, 7]])
    np.testing.assert_array_equal(cm.run({"w0": x}, sanitize=sanitize_)["y"], want)


@pytest.mark.slow
@needs_qemu
def test_input_w0_in_model_in_runs_correctly_on_the_emulated_m4(in_onnx):
    from onnxcc.runtime import qemu

    model, cm = in_onnx
    x = np.array([[0, 1, 0, 0], [1, -2, 0.5, 3]], np.float32)
    for row in x:
        feeds = {"w0": row[None]}
        np.testing.assert_array_equal(qemu.run_on_qemu(cm, feeds)["y"], ort_run(model, feeds)["y"])


def test_model_named_onnxcc_rt_keeps_the_runtime_header(rng):
    model = _w0_model()
    cm = onnxcc.compile(model, "host", name="onnxcc_rt")
    assert cm.mmap["c_prefix"] == "model_onnxcc_rt" and "runtime" in cm.mmap["c_prefix_renamed"]
    assert (cm.lib_dir / "onnxcc_rt.h").read_text() == RT_HEADER.read_text()
    assert "#ifndef MODEL_ONNXCC_RT_H" in (cm.lib_dir / "model_onnxcc_rt.h").read_text()
    x = rng.standard_normal((1, 4)).astype(np.float32)
    np.testing.assert_allclose(cm.run({"w0": x})["y"], ort_run(model, {"w0": x})["y"], rtol=1e-6)


def test_tensor_named_like_a_splat_constant(rng):
    # a scalar constant becomes the splat ``in_s0``; the input ``s0`` must not take that name
    model = make_model([("Add", ["s0", "c"], ["t"]), ("Mul", ["t", "s0"], ["y"])], {"s0": (2, 3)},
                       {"y": (2, 3)}, {"c": np.array(1.5, np.float32)})
    cm = onnxcc.compile(model, "host", name="in")
    src = (cm.lib_dir / "in.c").read_text()
    assert "static const float in_s0[1]" in src and cm.mmap["inputs"][0]["param"] == "in_in_s0"
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(cm.run({"s0": x})["y"], ort_run(model, {"s0": x})["y"], rtol=1e-6)


def test_tensor_named_like_a_kernel_function(rng):
    model = make_model([("Relu", ["k0_relu"], ["y"])], {"k0_relu": (2, 3)}, {"y": (2, 3)})
    cm = onnxcc.compile(model, "host", name="in")
    src = (cm.lib_dir / "in.c").read_text()
    assert "in_k0_relu(out_y, in_in_k0_relu);" in src
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(cm.run({"k0_relu": x})["y"], np.maximum(x, 0))


@pytest.mark.parametrize("length", [100, 300, 10000])
def test_long_name_on_the_command_line(tmp_path, length):
    model = _w0_model()
    onnx.save(model, str(tmp_path / "m.onnx"))
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "onnxcc.cli", "compile", str(tmp_path / "m.onnx"), "--target",
                        "host", "--name", "n" * length, "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    prefix = Namer("n" * length).prefix
    assert (out / f"{prefix}.h").is_file() and len(prefix) <= MAX_PREFIX
    cm = onnxcc.compile(model, "host", name="n" * length)
    x = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(cm.run({"w0": x})["y"], ort_run(model, {"w0": x})["y"])


# -- the static arena: opt-in, aligned to <M>_ARENA_ALIGN next to odd-sized globals ---------------

ODD_GLOBALS = """/* Odd-sized globals in .data and .bss to push the next object off alignment. */
char {p}_d1[1] = {{1}}; char {p}_d3[3] = {{1, 2, 3}}; char {p}_d7[7] = {{1}};
char {p}_b1[1]; char {p}_b3[3]; char {p}_b7[7];
"""

STATIC_MAIN = r"""#include <stdio.h>
#include <string.h>
#include "st.h"
extern char before_d1[1], after_b7[7];
int main(void)
{
    float x[6] = {1, 2, 3, 4, 5, 6}, y[6];
    int s;
    memset(y, 0, sizeof y);
    s = (int)st_run_static(x, y);
    printf("%d %u %d %g\n", s, (unsigned)ST_ARENA_ALIGN, before_d1[0] + after_b7[0], (double)y[5]);
    return 0;
}
"""


@pytest.fixture(scope="module")
def softmax_lib():
    model = make_model([("Softmax", ["x"], ["t"]), ("Softmax", ["t"], ["y0"])], {"x": (2, 3)},
                       {"y0": (2, 3)})
    cm = onnxcc.compile(model, "host", name="st")
    assert cm.arena_size > 0
    return model, cm


def test_static_arena_is_opt_in(softmax_lib):
    _, cm = softmax_lib
    h = (cm.lib_dir / "st.h").read_text()
    assert "#ifdef ST_STATIC_ARENA" in h and "st_run_static" in h
    obj = cm.lib_dir / "st_plain.o"
    subprocess.run(["cc", *WARN_FLAGS, f"-I{cm.lib_dir}", "-c", str(cm.lib_dir / "st.c"), "-o", str(obj)],
                   check=True)
    syms = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    assert "st_run_static" not in syms and "st_static_arena" not in syms
    obj.unlink()


def _arena_address(exe: Path, nm: str = "nm") -> int:
    out = subprocess.run([nm, str(exe)], capture_output=True, text=True, check=True).stdout
    return next(int(ln.split()[0], 16) for ln in out.splitlines() if ln.endswith(" st_static_arena"))


@pytest.mark.parametrize("cc,std", [("gcc", "-std=c99"), ("gcc", "-std=c11"), ("clang", "-std=c99"),
                                    ("clang", "-std=c11")])
def test_static_arena_is_aligned_between_odd_globals(softmax_lib, tmp_path, cc, std):
    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    model, cm = softmax_lib
    lib = cm.lib_dir
    (tmp_path / "before.c").write_text(ODD_GLOBALS.format(p="before"))
    (tmp_path / "after.c").write_text(ODD_GLOBALS.format(p="after"))
    (tmp_path / "main.c").write_text(STATIC_MAIN)
    exe = tmp_path / "static"
    flags = [f if f != "-std=c99" else std for f in WARN_FLAGS]
    subprocess.run([cc, *flags, "-Wshadow", "-DST_STATIC_ARENA", f"-I{lib}", str(tmp_path / "before.c"),
                    str(lib / "st.c"), str(tmp_path / "after.c"), str(lib / "st_weights.c"),
                    str(tmp_path / "main.c"), "-o", str(exe), "-lm"], check=True)
    status, align, _, y5 = subprocess.run([str(exe)], capture_output=True, text=True,
                                          check=True).stdout.split()
    assert status == "0" and int(align) == cm.mmap["arena"]["alignment"] >= 16
    assert _arena_address(exe) % int(align) == 0
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(float(y5), ort_run(model, {"x": x})["y0"][1, 2], rtol=1e-5)


def test_static_arena_without_alignment_support_rounds_up_at_run_time(softmax_lib, tmp_path):
    """The last branch (no C11, no GNU attribute): spare bytes and a rounded pointer."""
    _, cm = softmax_lib
    lib = cm.lib_dir
    src = (lib / "st.c").read_text().replace("defined(__GNUC__) || defined(__clang__)", "0")
    (tmp_path / "st.c").write_text(src)
    (tmp_path / "main.c").write_text(STATIC_MAIN)
    (tmp_path / "before.c").write_text(ODD_GLOBALS.format(p="before"))
    (tmp_path / "after.c").write_text(ODD_GLOBALS.format(p="after"))
    exe = tmp_path / "static"
    subprocess.run(["cc", *WARN_FLAGS, "-DST_STATIC_ARENA", f"-I{lib}", str(tmp_path / "before.c"),
                    str(tmp_path / "st.c"), str(tmp_path / "after.c"), str(lib / "st_weights.c"),
                    str(tmp_path / "main.c"), "-o", str(exe), "-lm"], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "0"


def test_static_arena_is_aligned_in_cortex_m4_firmware(tmp_path):
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc not installed")
    model = make_model([("Softmax", ["x"], ["t"]), ("Softmax", ["t"], ["y0"])], {"x": (2, 3)},
                       {"y0": (2, 3)})
    cm = onnxcc.compile(model, "cortex-m4", name="st")
    lib = cm.lib_dir
    (tmp_path / "before.c").write_text(ODD_GLOBALS.format(p="before"))
    (tmp_path / "after.c").write_text(ODD_GLOBALS.format(p="after"))
    (tmp_path / "main.c").write_text(STATIC_MAIN.replace("#include <stdio.h>\n", "").replace(
        '    printf("%d %u %d %g\\n", s, (unsigned)ST_ARENA_ALIGN, before_d1[0] + after_b7[0], (double)y[5]);\n',
        "    return s + before_d1[0] + after_b7[0];\n"))
    elf = tmp_path / "fw.elf"
    subprocess.run(["arm-none-eabi-gcc", *WARN_FLAGS, *CORTEX_M4_FLAGS, "-Wshadow", "-DST_STATIC_ARENA",
                    f"-I{lib}", str(tmp_path / "before.c"), str(lib / "st.c"), str(tmp_path / "after.c"),
                    str(lib / "st_weights.c"), str(tmp_path / "main.c"), "--specs=nosys.specs",
                    "-o", str(elf), "-lm"], check=True)
    assert _arena_address(elf, "arm-none-eabi-nm") % cm.mmap["arena"]["alignment"] == 0


# -- onnxcc_requantize: the C helper the renderer emits, bit-exact with its numpy reference ---------

@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_requantize_helper_is_bit_exact_and_ub_free(tmp_path, cc):
    from onnxcc.codegen.requantize import C_HELPER, requantize

    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    rng = np.random.default_rng(9)
    edge = np.array([0, 1, -1, 2, -2, 3, -3, 5, -5, 2**31 - 1, -2**31, 2**30, -2**30, 12345, -12345])
    n = 4000
    xs = np.concatenate([np.repeat(edge, len(edge)), rng.integers(-2**31, 2**31, n),
                         rng.integers(-300, 300, n)])
    ms = np.concatenate([np.tile(np.abs(edge).clip(0, 2**31 - 1), len(edge)),
                         rng.integers(0, 2**31, n), rng.integers(2**30, 2**31, n)])
    ss = np.concatenate([rng.integers(1, 63, len(edge) ** 2), rng.integers(1, 63, n),
                         rng.integers(1, 40, n)])
    ss[:30] = [1, 62] * 15

    got = run_c_requantize(tmp_path, C_HELPER, "onnxcc_requantize", xs, ms, ss, cc=cc)
    np.testing.assert_array_equal(got, requantize(xs, ms, ss))
