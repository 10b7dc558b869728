"""The CMake and Make fragments shipped with a generated library build a working program."""

import shutil
import subprocess

import numpy as np
import pytest

from builders import make_model
import onnxcc

MAIN_C = r"""
#include <stdio.h>
#include "net.h"
static float x[NET_INPUT_0_SIZE], y[NET_OUTPUT_0_SIZE];
int main(void) {
    static union { unsigned char b[NET_ARENA_SIZE > 0 ? NET_ARENA_SIZE : 1]; double d; } arena;
    int i;
    for (i = 0; i < (int)NET_INPUT_0_SIZE; ++i) x[i] = (float)i - 3.0f;
    if (net_run(arena.b, sizeof arena.b, x, y) != NET_OK) return 1;
    for (i = 0; i < (int)NET_OUTPUT_0_SIZE; ++i) printf("%g\n", y[i]);
    return 0;
}
"""


def _model(rng):
    w = rng.standard_normal((6, 4)).astype(np.float32)
    return make_model([("MatMul", ["x", "w"], ["t"]), ("Softmax", ["t"], ["y"])],
                      {"x": (1, 6)}, {"y": (1, 4)}, {"w": w})


def _expected(rng_model):
    from builders import ort_run

    x = (np.arange(6, dtype=np.float32) - 3).reshape(1, 6)
    return ort_run(rng_model, {"x": x})["y"].reshape(-1)


@pytest.mark.parametrize("target", ["host", "cortex-m4"])  # .incbin blob and C-array weights
def test_cmake_fragment_builds_and_runs(rng, tmp_path, target):
    if not shutil.which("cmake"):
        pytest.skip("cmake not installed")
    m = _model(rng)
    onnxcc.compile(m, target, name="net").save(tmp_path / "net")
    (tmp_path / "main.c").write_text(MAIN_C)
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\nadd_subdirectory(net)\n"
        "add_executable(app main.c)\ntarget_link_libraries(app net)\n")
    subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "b")], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(tmp_path / "b")], check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "b" / "app")], check=True, capture_output=True, text=True).stdout
    np.testing.assert_allclose(np.array(out.split(), np.float32), _expected(m), rtol=1e-5, atol=1e-6)


def test_make_fragment_builds_and_runs(rng, tmp_path):
    if not shutil.which("make"):
        pytest.skip("make not installed")
    m = _model(rng)
    onnxcc.compile(m, "host", name="net").save(tmp_path / "net")
    (tmp_path / "main.c").write_text(MAIN_C)
    (tmp_path / "Makefile").write_text(
        "include net/net.mk\napp: main.c $(NET_SRCS)\n\t$(CC) $(NET_CFLAGS) -Wall -Wextra -Werror "
        "-o $@ $^ $(NET_LDLIBS)\n")
    subprocess.run(["make", "-C", str(tmp_path), "app"], check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "app")], check=True, capture_output=True, text=True).stdout
    np.testing.assert_allclose(np.array(out.split(), np.float32), _expected(m), rtol=1e-5, atol=1e-6)
