"""Every user error of every CLI command prints one message naming what is wrong and what to do,
and exits 2 without a traceback; a model too big for the target's address space is refused
before any file is written."""

import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto

from builders import make_model
import onnxcc
from onnxcc.cli import main
from onnxcc.errors import MemoryBudgetError, OnnxccError, ShapeError
from onnxcc.runtime.build import check_feeds
from onnxcc.targets import TARGETS, load_target_file


@pytest.fixture
def relu(tmp_path):
    p = tmp_path / "relu.onnx"
    p.write_bytes(make_model([("Relu", ["x"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)}).SerializeToString())
    return p


@pytest.fixture
def neg64(tmp_path):
    p = tmp_path / "neg.onnx"
    p.write_bytes(make_model([("Neg", ["x"], ["y"])], {"x": (3,)}, {"y": (3,)},
                             dtype=TensorProto.INT64).SerializeToString())
    return p


def _user_error(capsys, argv, *needles):
    """Run ``onnxcc argv``: exit 2, one ``error:`` message containing ``needles``, no traceback."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    for n in needles:
        assert n in err, (n, err)
    return err


# -- compile, report, check -------------------------------------------------------------------

def test_compile_errors(tmp_path, capsys, relu):
    _user_error(capsys, ["compile", tmp_path / "missing.onnx"], "missing.onnx")
    _user_error(capsys, ["compile", relu, "--target", "cortex-m9"], "unknown target 'cortex-m9'",
                "onnxcc targets")
    _user_error(capsys, ["compile", relu, "--target-file", tmp_path / "nope.toml"],
                "cannot read target file")
    _user_error(capsys, ["compile", relu, "--input-shape", "x=1,four"], "NAME=1,3,224,224")
    _user_error(capsys, ["compile", relu, "--input-shape", "x=-1,4"], "cannot be negative")
    _user_error(capsys, ["compile", relu, "--dump-ir", "no-such-pass", "-o", tmp_path / "o"],
                "no pass named 'no-such-pass'", "passes that ran")
    assert not (tmp_path / "o").exists()
    (tmp_path / "file").write_text("x")
    _user_error(capsys, ["compile", relu, "-o", tmp_path / "file"], "is not a folder")
    _user_error(capsys, ["compile", relu, "-o", tmp_path / "file" / "sub"], "cannot write")
    _user_error(capsys, ["compile", relu, "--no-such-option"], "unrecognized arguments")


def test_report_and_check_errors(tmp_path, capsys, relu):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    _user_error(capsys, ["report", bad], "bad.onnx")
    _user_error(capsys, ["report", relu, "--input-shape", "=1"], "cannot parse --input-shape")
    _user_error(capsys, ["check", bad], "bad.onnx")
    det = tmp_path / "det.onnx"
    det.write_bytes(make_model([("Unique", ["x"], ["y"])], {"x": (2, 2)}, {"y": None}).SerializeToString())
    _user_error(capsys, ["check", det], "'n0' (Unique)", "hint:")
    _user_error(capsys, ["check"], "the following arguments are required: model")


def test_ops_and_targets_errors(capsys):
    _user_error(capsys, ["ops", "extra"], "unrecognized arguments")
    _user_error(capsys, ["targets", "--bogus"], "unrecognized arguments")
    _user_error(capsys, ["frobnicate"], "invalid choice")


@pytest.mark.parametrize("cmd", [["ops"], ["targets"]])
def test_closed_stdout_is_not_a_traceback(cmd):
    """``onnxcc ops | head``: the reader leaves before onnxcc writes."""
    p = subprocess.Popen([sys.executable, "-m", "onnxcc.cli", *cmd], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()   # before the interpreter has even started
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    p.stderr.close()
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert p.returncode == 141


def test_a_bug_is_one_line_with_the_traceback_under_verbose(capsys, monkeypatch):
    import onnxcc.cli as cli

    def boom():
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cli, "ops_table", boom)
    assert main(["ops"]) == 70
    err = capsys.readouterr().err
    assert "internal error" in err and "kaboom" in err and "Traceback" not in err
    assert main(["-v", "ops"]) == 70
    assert "Traceback" in capsys.readouterr().err


# -- run ----------------------------------------------------------------------------------------

def test_run_input_file_errors(tmp_path, capsys, relu):
    run = ["run", relu, "--inputs"]
    _user_error(capsys, [*run, tmp_path / "missing.npz"], "missing.npz: no such file", "numpy.savez")
    (tmp_path / "text.npz").write_text("hello, not numpy")
    _user_error(capsys, [*run, tmp_path / "text.npz"], "is not an .npz file")
    np.savez(tmp_path / "ok.npz", x=np.zeros((1, 4), np.float32))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:150])
    _user_error(capsys, [*run, tmp_path / "cut.npz"], "cut.npz")
    np.save(tmp_path / "one.npy", np.zeros((1, 4), np.float32))
    _user_error(capsys, [*run, tmp_path / "one.npy"], "single .npy array")
    np.savez(tmp_path / "obj.npz", x=np.array([[object()] * 4], dtype=object))
    _user_error(capsys, [*run, tmp_path / "obj.npz"], "array 'x'", "Python objects")
    _user_error(capsys, [*run, tmp_path], "is a folder")
    np.savez(tmp_path / "str.npz", x=np.array([["a", "b", "c", "d"]]))
    _user_error(capsys, [*run, tmp_path / "str.npz"], "input 'x'", "strings", "float32")


def test_run_inputs_are_checked_against_the_model(tmp_path, capsys, relu):
    run = ["run", relu, "--inputs"]
    np.savez(tmp_path / "extra.npz", x=np.zeros((1, 4), np.float32), z=np.zeros(2))
    _user_error(capsys, [*run, tmp_path / "extra.npz"], "no input named 'z'", "['x']")
    np.savez(tmp_path / "none.npz", y=np.zeros((1, 4), np.float32))
    _user_error(capsys, [*run, tmp_path / "none.npz"], "no input named 'y'")
    np.savez(tmp_path / "empty.npz")
    _user_error(capsys, [*run, tmp_path / "empty.npz"], "missing input 'x'")
    np.savez(tmp_path / "shape.npz", x=np.zeros((2, 4), np.float32))
    _user_error(capsys, [*run, tmp_path / "shape.npz"], "shape (2, 4)", "(1, 4)")
    np.savez(tmp_path / "big.npz", x=np.full((1, 4), 1e300))
    _user_error(capsys, [*run, tmp_path / "big.npz"], "float64", "cannot hold exactly")


def test_run_lossy_dtype_is_refused_lossless_is_converted(tmp_path, capsys, neg64):
    np.savez(tmp_path / "frac.npz", x=np.array([1.5, 2.0, 3.0]))
    _user_error(capsys, ["run", neg64, "--inputs", tmp_path / "frac.npz"], "input 'x' is float64",
                "int64", "astype")
    np.savez(tmp_path / "whole.npz", x=np.array([1.0, 2.0, 3.0]))
    assert main(["run", str(neg64), "--inputs", str(tmp_path / "whole.npz"), "-o", str(tmp_path / "y")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["y"], [-1, -2, -3])
    np.savez(tmp_path / "i32.npz", x=np.array([4, 5, 6], np.int32))
    assert main(["run", str(neg64), "--inputs", str(tmp_path / "i32.npz")]) == 0
    assert "min -6 max -4" in capsys.readouterr().out


def test_run_unwritable_output(tmp_path, capsys, relu):
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 4), np.float32))
    run = ["run", relu, "--inputs", tmp_path / "x.npz", "-o"]
    _user_error(capsys, [*run, tmp_path / "no" / "such" / "y.npz"], "does not exist")
    (tmp_path / "dir.npz").mkdir()
    _user_error(capsys, [*run, tmp_path / "dir.npz"], "is a folder")
    (tmp_path / "file").write_text("x")
    _user_error(capsys, [*run, tmp_path / "file" / "y.npz"], "is not a folder")


def test_run_errors_through_the_installed_command(tmp_path, relu):
    p = subprocess.run([sys.executable, "-m", "onnxcc.cli", "run", str(relu), "--inputs",
                        str(tmp_path / "missing.npz")], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error:") and "Traceback" not in p.stderr


@pytest.mark.parametrize("dtype,values,ok", [
    ("float64", [1.0, 2.0, 3.0], True), ("float64", [0.5, 2.0, 3.0], False),
    ("float32", [np.nan, 0, 0], False), ("int32", [1, 2, 3], True), ("uint64", [1, 2, 3], True),
    ("bool", [True, False, True], True), ("float16", [1, 2, 3], True)])
def test_check_feeds_rule_for_int64_inputs(dtype, values, ok):
    mmap = {"inputs": [{"name": "x", "dtype": "int64", "shape": [3]}]}
    feed = {"x": np.array(values, dtype)}
    if ok:
        (a,) = check_feeds(mmap, feed)
        assert a.dtype == np.int64 and a.tolist() == np.array(values).astype(np.int64).tolist()
    else:
        with pytest.raises(ShapeError, match="cannot hold exactly"):
            check_feeds(mmap, feed)


@pytest.mark.parametrize("dtype,values,ok", [
    ("float64", [0.1, 1e30, -np.inf], True),        # rounded to float32, nothing overflows
    ("float64", [1e39, 0, 0], False),               # overflows float32
    ("int64", [1, 2**24, -(2**24)], True), ("int64", [2**24 + 1, 0, 0], False),
    ("uint8", [0, 128, 255], True), ("complex64", [1, 2, 3], False)])
def test_check_feeds_rule_for_float32_inputs(dtype, values, ok):
    mmap = {"inputs": [{"name": "x", "dtype": "float32", "shape": [3]}]}
    feed = {"x": np.array(values, dtype)}
    if ok:
        assert check_feeds(mmap, feed)[0].dtype == np.float32
    else:
        with pytest.raises(ShapeError, match="cannot hold exactly|complex"):
            check_feeds(mmap, feed)


def test_api_refuses_an_extra_input():
    cm = onnxcc.compile(make_model([("Relu", ["x"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)}), "host")
    with pytest.raises(ShapeError, match="no input named 'xx'"):
        cm.run({"x": np.zeros((1, 4), np.float32), "xx": np.zeros(1)})


# -- fit before build --------------------------------------------------------------------------

def _huge():
    """A 6.4 GB float input reduced to a scalar: cheap to compile, no array is ever allocated."""
    return make_model([("ReduceSum", ["x"], ["y"], {"keepdims": 0})], {"x": (40000, 40000)}, {"y": ()})


def test_targets_know_their_pointer_width(tmp_path):
    assert TARGETS["cortex-m4"].pointer_bits == 32 and TARGETS["host"].pointer_bits == 64
    assert TARGETS["cortex-m4"].max_object_bytes == 2**31 - 1
    board = tmp_path / "b.toml"
    board.write_text('name = "m0"\nfamily = "mcu"\ntriple = "thumbv6m-none-eabi"\ncpu = "cortex-m0"\n')
    assert load_target_file(board).pointer_bits == 32
    board.write_text('base = "cortex-m4"\npointer_bits = 24\n')
    with pytest.raises(OnnxccError, match="pointer_bits must be 16, 32 or 64"):
        load_target_file(board)


def test_tensor_beyond_32_bit_address_space_is_refused_before_any_file(tmp_path, capsys):
    with pytest.raises(MemoryBudgetError, match=r"32-bit cortex-m4 .*'x' \(6,400,000,000 B\)"):
        onnxcc.compile(_huge(), "cortex-m4")
    path = tmp_path / "huge.onnx"
    path.write_bytes(_huge().SerializeToString())
    _user_error(capsys, ["compile", path, "--target", "cortex-m4", "-o", tmp_path / "out"],
                "largest object a 32-bit cortex-m4 can address", "hint:")
    assert not (tmp_path / "out").exists()
    _user_error(capsys, ["check", path, "--target", "cortex-m4"], "32-bit")
    assert onnxcc.compile(_huge(), "host").mmap["inputs"][0]["shape"] == [40000, 40000]   # fits 64 bits


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_run_with_feeds_that_are_no_mapping_is_a_shape_error(target):
    """run(None) and run([x]) raise ShapeError naming what to feed; they were TypeError (None is
    not iterable, an array unhashable) or ValueError (an array compared with a name)."""
    cm = onnxcc.compile(make_model([("Relu", ["x"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)}), target)
    x = np.ones((1, 4), np.float32)
    for bad in (None, [x], x):
        with pytest.raises(ShapeError, match="not a mapping of input names"):
            cm.run(bad)
    np.testing.assert_array_equal(cm.run({"x": x})["y"], x)
