"""Output folders: onnxcc writes only its own files, never removes or overwrites a user's, and a
failed compile or save leaves the folder as it was (compiler/outdir.py)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from builders import make_model
import onnxcc
from onnxcc.errors import OutputError
from onnxcc.runtime.build import WARN_FLAGS


def _matmul(rng, k=6, n=4):
    w = rng.standard_normal((k, n)).astype(np.float32)
    return make_model([("MatMul", ["x", "w"], ["t"]), ("Relu", ["t"], ["y"])], {"x": (1, k)},
                      {"y": (1, n)}, {"w": w})


def _write(path: Path, model) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _cli(*args, cwd, umask=None):
    pre = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([sys.executable, "-m", "onnxcc.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, preexec_fn=pre)


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: content, inode and mtime (a replaced file changes
    inode; an untouched one keeps all three)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (None if p.is_dir() else p.read_bytes(), st.st_ino,
                                         st.st_mtime_ns, st.st_mode)
    return out


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "fw"
    (proj / "src").mkdir(parents=True)
    (proj / "main.c").write_text("int main(void) { return 0; }\n")
    (proj / "src" / "board.c").write_text("int board;\n")
    (proj / "notes.json").write_text('{"not": "onnxcc"}\n')
    return proj


def test_project_folder_survives_compile_into_dot(rng, tmp_path):
    proj = _project(tmp_path)
    _write(proj / "kws.onnx", _matmul(rng))
    before = _snapshot(proj)
    p = _cli("compile", "kws.onnx", "-o", ".", cwd=proj)
    assert p.returncode == 0, p.stderr
    after = _snapshot(proj)
    for name, state in before.items():   # every file of the user's untouched
        assert after[name] == state, name
    files = json.loads((proj / "kws.json").read_text())["files"]
    assert sorted(files) == files and "kws.c" in files and "kws.json" in files
    assert set(after) - set(before) == set(files)   # nothing else written, no temporaries left


def test_second_model_keeps_the_first_and_both_build(rng, tmp_path):
    lib = tmp_path / "models"
    a = onnxcc.compile(_matmul(rng), "host", name="a")
    b = onnxcc.compile(_matmul(rng, 8, 3), "host", name="b")
    a.save(lib)
    first = {n: s for n, s in _snapshot(lib).items() if n.startswith("a")}
    b.save(lib)
    after = _snapshot(lib)
    assert {n: s for n, s in after.items() if n.startswith("a")} == first
    assert set(json.loads((lib / "a.json").read_text())["files"]) <= set(after)
    assert set(json.loads((lib / "b.json").read_text())["files"]) <= set(after)
    cmake = (lib / "CMakeLists.txt").read_text()
    assert "include(${CMAKE_CURRENT_LIST_DIR}/a.cmake)" in cmake
    assert "include(${CMAKE_CURRENT_LIST_DIR}/b.cmake)" in cmake
    # both libraries link into one program, and each still computes its model
    main = tmp_path / "main.c"
    main.write_text('#include <stdio.h>\n#include "a.h"\n#include "b.h"\n'
                    "static float xa[A_INPUT_0_SIZE], ya[A_OUTPUT_0_SIZE], xb[B_INPUT_0_SIZE], "
                    "yb[B_OUTPUT_0_SIZE];\nstatic double arena[64];\nint main(void) {\n"
                    "    int i;\n    for (i = 0; i < (int)A_INPUT_0_SIZE; ++i) xa[i] = (float)i;\n"
                    "    for (i = 0; i < (int)B_INPUT_0_SIZE; ++i) xb[i] = (float)i;\n"
                    "    if (a_run(arena, sizeof arena, xa, ya) || b_run(arena, sizeof arena, xb, yb)) return 1;\n"
                    "    for (i = 0; i < (int)A_OUTPUT_0_SIZE; ++i) printf(\"%g\\n\", ya[i]);\n"
                    "    for (i = 0; i < (int)B_OUTPUT_0_SIZE; ++i) printf(\"%g\\n\", yb[i]);\n"
                    "    return 0;\n}\n")
    exe = tmp_path / "app"
    srcs = [str(lib / f) for f in ("a.c", "a_weights.c", "b.c", "b_weights.c")]
    subprocess.run(["cc", *WARN_FLAGS, f"-I{lib}", f"-Wa,-I{lib}", str(main), *srcs, "-o", str(exe),
                    "-lm"], check=True)
    got = np.array(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split(),
                   np.float32)
    want = np.concatenate([a.run({"x": np.arange(6, dtype=np.float32)[None]})["y"].ravel(),
                           b.run({"x": np.arange(8, dtype=np.float32)[None]})["y"].ravel()])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if shutil.which("cmake"):   # the CMakeLists.txt index builds both library targets
        (tmp_path / "CMakeLists.txt").write_text(
            "cmake_minimum_required(VERSION 3.13)\nproject(app C)\nadd_subdirectory(models)\n"
            "add_executable(app main.c)\ntarget_link_libraries(app a b)\n")
        subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "bld")], check=True,
                       capture_output=True)
        subprocess.run(["cmake", "--build", str(tmp_path / "bld")], check=True, capture_output=True)
        out = subprocess.run([str(tmp_path / "bld" / "app")], check=True, capture_output=True, text=True)
        np.testing.assert_allclose(np.array(out.stdout.split(), np.float32), want, rtol=1e-5, atol=1e-6)


def test_recompile_is_byte_identical_and_replaces_only_owned_files(rng, tmp_path):
    proj = _project(tmp_path)
    m = _matmul(rng)
    onnxcc.compile(m, "host", name="net").save(proj)
    before = _snapshot(proj)
    owned = set(json.loads((proj / "net.json").read_text())["files"])
    onnxcc.compile(m, "host", name="net").save(proj)
    after = _snapshot(proj)
    assert set(after) == set(before)
    for name in before:
        assert after[name][0] == before[name][0], name               # same bytes
        if name not in owned:
            assert after[name] == before[name], name                 # the user's: untouched
        else:
            assert after[name][1] != before[name][1], name           # ours: replaced (new inode)


def test_files_no_longer_generated_are_removed(rng, tmp_path):
    proj = _project(tmp_path)
    onnxcc.compile(_matmul(rng), "host", name="net").save(proj)
    assert (proj / "net_weights.bin").exists()                       # the host links a blob
    onnxcc.compile(_matmul(rng), "cortex-m4", name="net").save(proj)  # weights in C arrays
    assert not (proj / "net_weights.bin").exists()
    assert (proj / "main.c").exists() and (proj / "src" / "board.c").exists()
    assert "net_weights.bin" not in json.loads((proj / "net.json").read_text())["files"]


def test_foreign_file_is_refused_then_forced(rng, tmp_path):
    proj = _project(tmp_path)
    _write(proj / "net.onnx", _matmul(rng))
    (proj / "net.h").write_text("/* my own header */\n")
    before = _snapshot(proj)
    p = _cli("compile", "net.onnx", "-o", ".", cwd=proj)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error:") and "net.h (not written by onnxcc)" in p.stderr
    assert "--force" in p.stderr
    assert _snapshot(proj) == before                                 # nothing written
    p = _cli("compile", "net.onnx", "-o", ".", "--force", cwd=proj)
    assert p.returncode == 0, p.stderr
    assert "my own header" not in (proj / "net.h").read_text()
    assert (proj / "main.c").read_bytes() == before["main.c"][0]


def test_foreign_memory_map_name_is_refused(rng, tmp_path):
    (tmp_path / "net.json").write_text('{"my": "config"}\n')
    with pytest.raises(OutputError, match=r"net.json \(not written by onnxcc\)"):
        onnxcc.compile(_matmul(rng), "host", name="net").save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json"]


def test_file_of_another_model_is_refused(rng, tmp_path):
    onnxcc.compile(_matmul(rng), "host", name="a").save(tmp_path)   # writes a_weights.c
    before = _snapshot(tmp_path)
    with pytest.raises(OutputError, match="a_weights.c \\(belongs to model 'a' in this folder\\)"):
        onnxcc.compile(_matmul(rng), "host", name="a_weights").save(tmp_path)
    assert _snapshot(tmp_path) == before


def test_folder_in_the_way_is_refused_even_with_force(rng, tmp_path):
    (tmp_path / "net.c").mkdir()
    with pytest.raises(OutputError, match=r"net.c \(a folder\)"):
        onnxcc.compile(_matmul(rng), "host", name="net").save(tmp_path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.c"]


def test_users_cmakelists_is_left_alone_and_the_fragment_builds(rng, tmp_path):
    proj = _project(tmp_path)
    user_cmake = "cmake_minimum_required(VERSION 3.13)\nproject(fw C)\ninclude(net.cmake)\n" \
                 "add_executable(fw main.c)\ntarget_link_libraries(fw net)\n"
    (proj / "CMakeLists.txt").write_text(user_cmake)
    cm = onnxcc.compile(_matmul(rng), "host", name="net")
    cm.save(proj, force=True)   # not even --force replaces a user's CMakeLists.txt
    assert (proj / "CMakeLists.txt").read_text() == user_cmake
    assert "CMakeLists.txt" not in cm.saved_files and "net.cmake" in cm.saved_files
    if shutil.which("cmake"):
        subprocess.run(["cmake", "-S", str(proj), "-B", str(tmp_path / "b")], check=True, capture_output=True)
        subprocess.run(["cmake", "--build", str(tmp_path / "b")], check=True, capture_output=True)


def test_shared_runtime_header_identical_content_is_accepted(rng, tmp_path):
    cm = onnxcc.compile(_matmul(rng), "host", name="net")
    shutil.copy(cm.lib_dir / "onnxcc_rt.h", tmp_path / "onnxcc_rt.h")   # e.g. copied by hand
    cm.save(tmp_path)
    assert "onnxcc_rt.h" in json.loads((tmp_path / "net.json").read_text())["files"]


def test_memory_map_without_a_file_list_owns_the_classic_names(rng, tmp_path):
    cm = onnxcc.compile(_matmul(rng), "host", name="net")
    cm.save(tmp_path)
    mm = json.loads((tmp_path / "net.json").read_text())
    del mm["files"]                                     # as written before ownership lists
    (tmp_path / "net.json").write_text(json.dumps(mm))
    (tmp_path / "net.cmake").unlink()
    cm.save(tmp_path)                                   # no conflict: net.h etc. are onnxcc's
    assert "files" in json.loads((tmp_path / "net.json").read_text())


def test_failed_compile_leaves_the_folder_unchanged(tmp_path):
    proj = _project(tmp_path)
    _write(proj / "det.onnx", make_model([("Unique", ["x"], ["y"])], {"x": (2, 2)}, {"y": None}))
    before = _snapshot(proj)
    p = _cli("compile", "det.onnx", "-o", ".", cwd=proj)
    assert p.returncode == 2 and "Unique" in p.stderr and "Traceback" not in p.stderr
    assert _snapshot(proj) == before
    p = _cli("compile", "det.onnx", "-o", "new/deeper", cwd=proj)
    assert p.returncode == 2 and not (proj / "new").exists()


def test_failed_write_midway_rolls_back(rng, tmp_path, monkeypatch):
    proj = _project(tmp_path)
    onnxcc.compile(_matmul(rng), "host", name="net").save(proj)
    before = _snapshot(proj)
    cm = onnxcc.compile(_matmul(rng, 6, 5), "host", name="net")   # other content
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 4:
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OutputError, match="No space left"):
        cm.save(proj)
    monkeypatch.setattr(os, "replace", real)
    after = _snapshot(proj)
    assert {n: s[0] for n, s in after.items()} == {n: s[0] for n, s in before.items()}


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_created_folders_and_files_follow_the_umask(rng, tmp_path, umask):
    _write(tmp_path / "net.onnx", _matmul(rng))
    p = _cli("compile", "net.onnx", "-o", "out/lib", cwd=tmp_path, umask=umask)
    assert p.returncode == 0, p.stderr
    for d in (tmp_path / "out", tmp_path / "out" / "lib"):
        assert d.stat().st_mode & 0o777 == 0o777 & ~umask, d
    for f in (tmp_path / "out" / "lib").iterdir():
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f
