"""CMSIS-NN beside onnxcc, layer by layer: instructions per MAC of every int8 conv, depthwise conv
and dense layer of the five MLPerf-Tiny-shaped models on an emulated Cortex-M (the M4 unless
``--target`` names another MCU target: CMSIS-NN's plain C kernels on a core without the DSP
extension, as onnxcc's).

    python benchmarks/cmsis_nn.py --cmsis-nn PATH [--models ds_cnn ...] [--target cortex-m4]
                                  [--opt -Os] [--cmsis-opt -O3]

PATH is a checkout of CMSIS-NN (github.com/ARM-software/CMSIS-NN) you fetched; nothing of it is
part of onnxcc. Each model is quantized as ``benchmarks/mcu.py`` does (``onnxcc.Int8`` with
seeded calibration inputs) and compiled for the target without patching (``max_recompute=0``),
so its layers run whole; one inference is counted kernel by kernel on the target's board by onnxcc's
instruction-count plugin (``onnxcc.runtime.qemu.count_kernels``). For each layer with MACs the
same shape is then given to CMSIS-NN's entry point as TensorFlow Lite Micro calls it:
``arm_depthwise_conv_wrapper_s8`` (which picks ``arm_depthwise_conv_3x3_s8`` for a 3x3 kernel
with padding of at most 1, else ``arm_depthwise_conv_s8_opt``), ``arm_convolve_wrapper_s8``
(``arm_convolve_1x1_s8_fast``, ``arm_convolve_1_x_n_s8`` or ``arm_convolve_s8``) and
``arm_fully_connected_s8``, on NHWC data (CMSIS-NN's layout; onnxcc's is NCHW) with seeded
random int8 values, per-channel multipliers in [2**30, 2**31) and nonzero zero points. Each call
is built into its own firmware with the same cross compiler, flags and ``--opt`` as onnxcc's
library, from the same startup and linker script, and counted the same way: from the function's
first instruction to its return. A call that returns an error status fails the benchmark (so a
count is never that of an argument check).

The table per model: the layer (onnxcc's kernel), its kind and shape, MACs, onnxcc's and
CMSIS-NN's instructions per MAC, and CMSIS-NN's count over onnxcc's; then the totals per kind.
Instructions are a proxy for cycles (a load or a multiply-accumulate is 1-2 cycles on the M4);
they are exact and repeatable where timings on these shared machines are not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mcu  # noqa: E402
import models as M  # noqa: E402

#: CMSIS-NN's folders whose C files are built (the s8 kernels and their support functions)
SOURCE_DIRS = ("ConvolutionFunctions", "FullyConnectedFunctions", "NNSupportFunctions")
#: file name parts of float and int4 kernels, which the s8 entry points never call (the int16
#: files stay: the s8 kernels call some of them, arm_nn_mat_mult_kernel_s8_s16)
OTHER_TYPES = ("_f16", "_f32", "_s4")

HARNESS = r"""
#include <stdint.h>
#include "arm_nnfunctions.h"
#include "onnxcc_semihost.h"

static int8_t x[IN_BYTES];
static int8_t w[W_BYTES];
static int32_t bias[OC], mult[OC], shift[OC];
static int8_t y[OUT_BYTES];
static int8_t scratch[SCRATCH] __attribute__((aligned(8)));
static uint32_t seed = 12345u;

static uint32_t next(void) { seed = seed * 1664525u + 1013904223u; return seed >> 8; }

int main(void) {
    int32_t st, need, i;
    uint32_t h = 0;
    char line[32];
    const char *hex = "0123456789abcdef";
    for (i = 0; i < IN_BYTES; ++i) x[i] = (int8_t)next();
    for (i = 0; i < W_BYTES; ++i) w[i] = (int8_t)next();
    for (i = 0; i < OC; ++i) {
        bias[i] = (int32_t)(next() % 4001u) - 2000;
        mult[i] = 1073741824 + (int32_t)(next() % 1073741823u);
        shift[i] = -7 - (int32_t)(next() % 3u);
    }
    {
        cmsis_nn_context ctx = {scratch, SCRATCH};
        cmsis_nn_dims in = {1, IH, IW, IC}, bd = {1, 1, 1, OC}, od = {1, OH, OW, OC};
#if KIND == 1
        cmsis_nn_dw_conv_params p = {5, -3, OC / IC, {SW, SH}, {PL, PT}, {DW, DH}, {-128, 127}};
        cmsis_nn_per_channel_quant_params q = {mult, shift};
        cmsis_nn_dims fd = {1, KH, KW, OC};
        need = arm_depthwise_conv_wrapper_s8_get_buffer_size(&p, &in, &fd, &od);
        if (need > SCRATCH) return 90;
        st = arm_depthwise_conv_wrapper_s8(&ctx, &p, &q, &in, x, &fd, w, &bd, bias, &od, y);
#elif KIND == 2
        cmsis_nn_conv_params p = {5, -3, {SW, SH}, {PL, PT}, {DW, DH}, {-128, 127}};
        cmsis_nn_per_channel_quant_params q = {mult, shift};
        cmsis_nn_dims fd = {OC, KH, KW, IC};
        need = arm_convolve_wrapper_s8_get_buffer_size(&p, &in, &fd, &od);
        if (need > SCRATCH) return 90;
        st = arm_convolve_wrapper_s8(&ctx, &p, &q, &in, x, &fd, w, &bd, bias, &od, y);
#else
        cmsis_nn_fc_params p = {5, 0, -3, {-128, 127}};
        cmsis_nn_per_tensor_quant_params q = {mult[0], shift[0]};
        cmsis_nn_dims fin = {ROWS, 1, 1, IC}, fd = {IC, 1, 1, OC}, fo = {ROWS, 1, 1, OC};
        need = arm_fully_connected_s8_get_buffer_size(&fd);
        if (need > SCRATCH) return 90;
        (void)in; (void)od;
        st = arm_fully_connected_s8(&ctx, &p, &q, &fin, x, &fd, w, &bd, bias, &fo, y);
#endif
    }
    for (i = 0; i < OUT_BYTES; ++i) h = h * 31u + (uint8_t)y[i];
    for (i = 0; i < 8; ++i) line[i] = hex[(h >> (28 - 4 * i)) & 15u];
    line[8] = '\n';
    line[9] = 0;
    onnxcc_semihost_write0(line);
    return st == 0 ? 0 : 91;
}
"""

ENTRY = {1: "arm_depthwise_conv_wrapper_s8", 2: "arm_convolve_wrapper_s8",
         3: "arm_fully_connected_s8"}
SCRATCH_BYTES = 65536


@dataclass(frozen=True)
class Layer:
    """One int8 layer as CMSIS-NN takes it. kind: 1 depthwise conv, 2 conv, 3 dense; spatial
    sizes in elements (a dense layer: ``ih = iw = oh = ow = 1``, ``rows`` its batch); pads
    top and left (CMSIS-NN's kernels bound the taps at the bottom and right by the input)."""

    kind: int
    ih: int
    iw: int
    ic: int
    oh: int
    ow: int
    oc: int
    kh: int = 1
    kw: int = 1
    sh: int = 1
    sw: int = 1
    pt: int = 0
    pl: int = 0
    dh: int = 1
    dw: int = 1
    rows: int = 1

    def macros(self) -> dict[str, int]:
        """The harness's -D macros: the fields upper-cased, KIND and the buffer sizes."""
        d = {k.upper(): v for k, v in self.__dict__.items()}
        d["IN_BYTES"] = self.rows * self.ih * self.iw * self.ic
        d["OUT_BYTES"] = self.rows * self.oh * self.ow * self.oc
        d["W_BYTES"] = self.oc * self.kh * self.kw * (1 if self.kind == 1 else self.ic)
        d["SCRATCH"] = SCRATCH_BYTES
        return d

    def text(self) -> str:
        if self.kind == 3:
            return f"{self.rows}x{self.ic} -> {self.oc}"
        s = f"{self.ic}x{self.ih}x{self.iw} -> {self.oc}x{self.oh}x{self.ow}, {self.kh}x{self.kw}"
        return s + (f" s{self.sh}" if self.sh > 1 or self.sw > 1 else "")


def layer_of(node) -> Layer | None:
    """The :class:`Layer` of an int8 Conv/MatMul node of onnxcc's graph (QLinearConv,
    QLinearMatMul, QGemm), or None for another op or a batch above 1."""
    op = node.op.split(".")[-1]
    if op == "QLinearConv":
        (n, c, ih, iw), (m, cg, kh, kw) = node.inputs[0].shape, node.inputs[3].shape
        (_, _, oh, ow) = node.outputs[0].shape
        sh, sw = node.attrs.get("strides") or (1, 1)
        dh, dw = node.attrs.get("dilations") or (1, 1)
        pads = node.attrs.get("pads") or (0, 0, 0, 0)
        group = node.attrs.get("group") or 1
        if n != 1 or group not in (1, c) or (group == c and cg != 1):
            return None
        return Layer(1 if group > 1 else 2, ih, iw, c, oh, ow, m, kh, kw, sh, sw, pads[0],
                     pads[1], dh, dw)
    if op in ("QLinearMatMul", "QGemm"):
        a, b = node.inputs[0].shape, node.inputs[3].shape
        trans_b = op == "QGemm" and node.attrs.get("transB", 0)
        k, n = (b[1], b[0]) if trans_b else (b[0], b[1])
        rows = int(np.prod(a[:-1]))
        return Layer(3, 1, 1, k, 1, 1, n, rows=rows)
    return None


class CmsisNN:
    """CMSIS-NN's s8 kernels cross-compiled once into objects for a Firmware's flags; counts
    one call of a layer (:meth:`count`)."""

    def __init__(self, root: Path, fw, work: Path) -> None:
        self.root, self.fw, self.work = Path(root), fw, Path(work)
        inc = self.root / "Include"
        if not (inc / "arm_nnfunctions.h").exists():
            raise SystemExit(f"{root} is not a CMSIS-NN checkout (no Include/arm_nnfunctions.h)")
        self.flags = [f"-I{inc}", "-w"]
        srcs = [p for d in SOURCE_DIRS for p in sorted((self.root / "Source" / d).glob("*.c"))
                if not any(t in p.stem for t in OTHER_TYPES)]
        (self.work / "cmsis").mkdir(parents=True, exist_ok=True)
        self.objects = [fw.compile_c(s, self.work / "cmsis" / f"{s.stem}.o", self.flags)
                        for s in srcs]
        (self.work / "harness.c").write_text(HARNESS)
        self.cache: dict[Layer, int] = {}

    def count(self, layer: Layer) -> int:
        """Instructions of one call of the layer's CMSIS-NN entry point (:data:`ENTRY`)."""
        if layer not in self.cache:
            d = [f"-D{k}={v}" for k, v in layer.macros().items()]
            with tempfile.TemporaryDirectory(dir=self.work) as td:
                obj = self.fw.compile_c(self.work / "harness.c", Path(td) / "harness.o",
                                        self.flags + d)
                elf = self.fw.link_objects([obj, *self.objects, *self.fw.runtime_objects],
                                           Path(td) / "layer.elf")
                self.cache[layer] = self.fw.count_elf(elf, ENTRY[layer.kind]).region
        return self.cache[layer]


def measure(name: str, cmsis_root: Path, *, target: str, opt: str, cmsis_opt: str,
            samples: int, timeout: float, work: Path) -> tuple[list[tuple], dict[str, tuple[int, int, int]]]:
    """(rows, totals) for one model: a row per layer (kernel, kind, shape, MACs, onnxcc
    instructions, CMSIS-NN instructions); totals per kind: (MACs, onnxcc, CMSIS-NN)."""
    import onnxcc
    from onnxcc.errors import MemoryBudgetError
    from onnxcc.report import macs
    from onnxcc.runtime import qemu

    model = M.build(name)
    (in_name, shape), = M.input_specs(model)
    rng = np.random.default_rng(7)
    calib = {in_name: rng.standard_normal((samples, *shape[1:])).astype(np.float32)}
    quant = onnxcc.Int8(calibration=calib)
    try:
        cm = onnxcc.compile(model, target, name=f"{name}_int8", quantize=quant,
                            max_recompute=0)
    except MemoryBudgetError:
        cm = onnxcc.compile(model, mcu.board_target(target), name=f"{name}_int8",
                            quantize=quant, max_recompute=0)
    prof = qemu.count_kernels(cm, M.random_feeds(model), opt=opt, timeout=timeout)
    if prof.kernels is None:
        raise SystemExit(f"{name}: the kernels' calls could not be matched to count them")
    peer = CmsisNN(cmsis_root, qemu.firmware(cm, opt=cmsis_opt), work)
    nodes = {n.name: n for n in cm.graph.nodes}
    rows, totals = [], {}
    for k in cm.program.kernels:
        node = nodes.get(k.node)
        kind = mcu.kernel_kind(node) if node is not None else None
        layer = layer_of(node) if kind else None
        if layer is None:
            continue
        n_mac, ours, theirs = macs(node), prof.kernels[k.name], peer.count(layer)
        rows.append((k.name, kind, layer.text(), n_mac, ours, theirs))
        t = totals.setdefault(kind, (0, 0, 0))
        totals[kind] = (t[0] + n_mac, t[1] + ours, t[2] + theirs)
    return rows, totals


def format_table(name: str, rows: list[tuple], totals: dict, opt: str, cmsis_opt: str,
                 target: str = "cortex-m4", board: str = "mps2-an386") -> str:
    """The per-layer table and the totals per kind as text."""
    flags = opt if cmsis_opt == opt else f"onnxcc {opt}, CMSIS-NN {cmsis_opt}"
    head = (f"== {name} int8 (unpatched), {target} on QEMU {board}, {flags}: "
            "instructions per MAC")
    lines = [head, f"{'layer':8s} {'kind':15s} {'shape':34s} {'MACs':>9s} {'onnxcc':>7s} "
             f"{'CMSIS-NN':>9s} {'ratio':>6s}"]
    for kn, kind, shape, n_mac, ours, theirs in rows:
        lines.append(f"{kn:8s} {kind:15s} {shape:34s} {n_mac:9,d} {ours / n_mac:7.2f} "
                     f"{theirs / n_mac:9.2f} {theirs / ours:6.2f}")
    for kind, (n_mac, ours, theirs) in totals.items():
        lines.append(f"{'all':8s} {kind:15s} {'':34s} {n_mac:9,d} {ours / n_mac:7.2f} "
                     f"{theirs / n_mac:9.2f} {theirs / ours:6.2f}")
    n_mac, ours, theirs = (sum(t[i] for t in totals.values()) for i in range(3))
    lines.append(f"{'all':8s} {'MAC layers':15s} {'':34s} {n_mac:9,d} {ours / n_mac:7.2f} "
                 f"{theirs / n_mac:9.2f} {theirs / ours:6.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cmsis-nn", required=True, metavar="PATH", type=Path,
                    help="a CMSIS-NN checkout (github.com/ARM-software/CMSIS-NN)")
    ap.add_argument("--models", nargs="*", default=list(M.TINY_MODELS),
                    help=f"from {', '.join(M.TINY_MODELS)}")
    ap.add_argument("--target", default="cortex-m4",
                    help="an MCU target (onnxcc targets); its board runs both")
    ap.add_argument("--opt", default="-Os", help="the optimization flag of both builds")
    ap.add_argument("--cmsis-opt", metavar="FLAG",
                    help="CMSIS-NN's optimization flag when it differs from --opt (e.g. -O3)")
    ap.add_argument("--samples", type=int, default=8, help="int8 calibration inputs")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per QEMU run")
    args = ap.parse_args(argv)
    unknown = [n for n in args.models if n not in M.TINY_MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(M.TINY_MODELS)}")
    from onnxcc.runtime import qemu
    from onnxcc.targets import get_target

    board = qemu.machine_for(get_target(args.target)).name
    with tempfile.TemporaryDirectory(prefix="onnxcc_cmsis_nn_") as td:
        for name in args.models:
            t0 = time.perf_counter()
            rows, totals = measure(name, args.cmsis_nn, target=args.target, opt=args.opt,
                                   cmsis_opt=args.cmsis_opt or args.opt, samples=args.samples,
                                   timeout=args.timeout, work=Path(td) / name)
            print(format_table(name, rows, totals, args.opt, args.cmsis_opt or args.opt,
                               args.target, board))
            print(f"({time.perf_counter() - t0:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
