import pytest

from builders import make_model
import onnxcc
from onnxcc.cli import main
from onnxcc.errors import MemoryBudgetError, OnnxccError
from onnxcc.targets import load_target_file


def _board(tmp_path, text):
    p = tmp_path / "board.toml"
    p.write_text(text)
    return p


def test_board_from_base_overrides_memory(tmp_path):
    t = load_target_file(_board(tmp_path, 'base = "cortex-m4"\nname = "tiny-m4"\nsram_bytes = 64\n'))
    assert (t.name, t.family, t.sram_bytes, t.cc) == ("tiny-m4", "mcu", 64, "arm-none-eabi-gcc")
    m = make_model([("Softmax", ["x"], ["t"]), ("Softmax", ["t"], ["y"])], {"x": (4, 8)}, {"y": (4, 8)})
    with pytest.raises(MemoryBudgetError, match="tiny-m4 has 64 bytes of SRAM"):
        onnxcc.compile(m, t)


def test_full_board_and_cli(tmp_path, capsys):
    p = _board(tmp_path, 'name = "big"\nfamily = "mcu"\ntriple = "thumbv7em-none-eabihf"\ncpu = "cortex-m7"\n'
                         'c_flags = ["-mcpu=cortex-m7", "-mthumb"]\nsram_bytes = 1048576\nflash_bytes = 2097152\n'
                         'weights_in_c = true\n')
    m = make_model([("Relu", ["x"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)})
    (tmp_path / "r.onnx").write_bytes(m.SerializeToString())
    assert main(["check", str(tmp_path / "r.onnx"), "--target-file", str(p)]) == 0
    assert "compiled for big" in capsys.readouterr().out


def test_dsp_and_board_keys(tmp_path):
    t = load_target_file(_board(tmp_path, 'base = "cortex-m3"\nname = "m3x"\ndsp = true\n'
                                          'board = "STM32F205"\n'))
    assert (t.dsp, t.board, t.cpu) == (True, "STM32F205", "cortex-m3")
    assert "STM32F205" in t.describe() and "DSP extension" in t.describe()
    t = load_target_file(_board(tmp_path, 'base = "cortex-m4"\nname = "stm32f411"\n'))
    assert t.dsp and t.board == ""   # dsp comes from the base's core, the board is another part


@pytest.mark.parametrize("text,msg", [
    ('base = "cortex-m4"\ndsp = "yes"\n', "dsp must be a bool"),
    ('name = "x"\nsram = 5\n', "unknown key 'sram'"),
    ('base = "cortex-m4"\nsram_bytes = "lots"\n', "sram_bytes must be a int"),
    ('base = "cortex-m4"\nsram_bytes = -1\n', "must be positive"),
    ('name = "x"\n', "missing family, triple, cpu"),
    ('base = "nope"\n', "unknown target 'nope'"),
    ('base = "cortex-m4"\nfamily = "gpu"\n', "family must be"),
    ("this is [not toml", "cannot read target file"),
])
def test_bad_board_files_name_the_key(tmp_path, text, msg):
    with pytest.raises(OnnxccError, match=msg):
        load_target_file(_board(tmp_path, text))


def test_target_file_that_is_no_text_or_names_no_base_is_refused(tmp_path, capsys):
    """A base that is no string (``base = [1]``) and a file that is not UTF-8 (a model given
    to --target-file by mistake) are OnnxccErrors (exit 2), not internal errors (TypeError and
    UnicodeDecodeError reached the CLI's catch-all, exit 70); so is a target that is a list."""
    with pytest.raises(OnnxccError, match=r"unknown target \[1\]"):
        load_target_file(_board(tmp_path, "base = [1]\n"))
    binary = tmp_path / "model.onnx"
    binary.write_bytes(b"\x08\x0a\xad\xff\x00")
    with pytest.raises(OnnxccError, match="cannot read target file"):
        load_target_file(binary)
    m = make_model([("Relu", ["x"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)})
    with pytest.raises(OnnxccError, match="unknown target"):
        onnxcc.compile(m, ["host"])
    (tmp_path / "r.onnx").write_bytes(m.SerializeToString())
    out = tmp_path / "out"
    assert main(["compile", str(tmp_path / "r.onnx"), "--target-file", str(binary),
                 "-o", str(out)]) == 2
    assert "cannot read target file" in capsys.readouterr().err and not out.exists()


def test_a_flag_the_compiler_refuses_names_the_target_flags(tmp_path, capsys):
    """A target file whose c_flags the cross compiler refuses: the build error's hint names the
    flags and the target file, not a bug in onnxcc's generated code."""
    import shutil

    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs gcc-arm-none-eabi")
    p = _board(tmp_path, 'base = "cortex-m4"\nname = "m4-bad"\n'
                         'c_flags = ["-mcpu=cortex-m4", "-mthumb", "-mno-such-flag"]\n')
    m = make_model([("Relu", ["x"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)})
    (tmp_path / "r.onnx").write_bytes(m.SerializeToString())
    assert main(["compile", str(tmp_path / "r.onnx"), "--target-file", str(p), "-o",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "-mno-such-flag" in err and "c_flags" in err, err
    assert "bug in onnxcc's generated code" not in err
