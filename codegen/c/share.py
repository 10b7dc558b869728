"""Size mode's kernel sharing for the C back end: kernels whose rendered C differs only in integer
literals (shapes, strides, loop bounds, offsets: the layers of a CNN stage) become one C function
reading those literals from a ``const`` table per call.

A kernel's body is cut into its integer literals and the text around them (comments dropped).
Kernels with the same signature and the same text between literals form a group; each literal
position whose value differs inside the group becomes ``p[i]`` in the group's one function, and
each call passes its own ``static const`` table of those values (``int16_t`` when every value
fits, else ``int32_t``). An ``int`` literal and an ``int32_t`` read compute the same on every
target onnxcc builds for (``int`` is 32 bits), so the shared function computes exactly what the
kernels did. Literals that C needs as constants stay literals: array sizes of declarations and
any literal outside the range of ``int32_t`` (they must then be equal within a group).

This is onnx2c's size lever turned around: onnx2c emits one small function per node; onnxcc in
size mode emits one plain nest per node (``Target.optimize``) and then one function per *kind* of
nest, so a MobileNet's thirteen pointwise convolutions cost one loop nest of code.
"""

from __future__ import annotations

import re
from typing import Any

_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_LITERAL = re.compile(r"(?<![\w.])(\d+)(?![\w.])")
_EXPONENT = re.compile(r"[\d.][eEpP][+-]$")   # the exponent of a float literal (1e-5)
_ARRAY_DECL = re.compile(r"^\s*(?:static\s+)?(?:const\s+)?[A-Za-z_]\w*\s+\**\s*[A-Za-z_]\w*\s*\[")
INT32_MAX = 2**31 - 1
PARAM = "ksp"   # the table parameter's name (no kernel buffer or variable is named so)


def _split(body: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``body`` (comments dropped) as the texts between its parameterizable integer literals
    and those literals' values."""
    text = _COMMENT.sub("", body)
    texts: list[str] = []
    values: list[int] = []
    cur, pos = "", 0
    for mt in _LITERAL.finditer(text):
        v, lit = int(mt.group(1)), mt.group(1)
        line = text[text.rfind("\n", 0, mt.start()) + 1:mt.start()]
        cur += text[pos:mt.start()]
        pos = mt.end()
        if _EXPONENT.search(text[max(0, mt.start() - 3):mt.start()]):
            cur += lit
            continue
        if _ARRAY_DECL.match(line) or v > INT32_MAX or (lit.startswith("0") and v):
            cur += lit   # a constant C needs (an array size), too large, or octal: plain text
            continue
        texts.append(cur)
        values.append(v)
        cur = ""
    texts.append(cur + text[pos:])
    return tuple(texts), tuple(values)


def share_kernels(kernels: list[dict[str, Any]], calls: list[str], table_name: Any
                  ) -> tuple[list[dict[str, Any]], list[str]]:
    """``kernels`` (dicts with ``fn``, ``signature``, ``body``, ``comment``) and their
    ``calls`` (one C call statement each, in order) with every group of two or more kernels
    differing only in integer literals merged into the group's first function, which takes one
    more parameter, ``const int16_t/int32_t *ksp``, and reads each differing literal ``i`` as
    ``ksp[i]``; each call passes its own table, ``table_name(fn)`` (a ``static const`` array
    declared in front of the shared function, in the returned entry's ``tables``). Kernels
    without a partner are returned unchanged."""
    groups: dict[tuple, list[int]] = {}
    parts = []
    for i, k in enumerate(kernels):
        texts, values = _split(k["body"])
        sig = k["signature"].replace(k["fn"] + "(", "\0(", 1)
        parts.append((texts, values))
        groups.setdefault((sig, texts), []).append(i)
    out_k: list[dict[str, Any]] = []
    out_c = list(calls)
    for i, k in enumerate(kernels):
        key = (k["signature"].replace(k["fn"] + "(", "\0(", 1), parts[i][0])
        members = groups[key]
        if len(members) < 2:
            out_k.append(k)
            continue
        if members[0] != i:
            continue          # emitted with the group's first kernel
        texts = parts[i][0]
        vals = [parts[m][1] for m in members]
        varying = [j for j in range(len(vals[0])) if len({v[j] for v in vals}) > 1]
        if not varying:       # identical bodies: one function, the others call it
            for m in members[1:]:
                out_c[m] = calls[m].replace(kernels[m]["fn"] + "(", k["fn"] + "(", 1)
            out_k.append(k)
            continue
        small = all(-32768 <= v[j] <= 32767 for v in vals for j in varying)
        ct = "int16_t" if small else "int32_t"
        slot = {j: n for n, j in enumerate(varying)}
        body = texts[0]
        for j, t in enumerate(texts[1:]):
            body += (f"{PARAM}[{slot[j]}]" if j in slot else str(vals[0][j])) + t
        tables = []
        for m in members:
            tname = table_name(kernels[m]["fn"])
            row = ", ".join(str(vals[members.index(m)][j]) for j in varying)
            tables.append(f"static const {ct} {tname}[{len(varying)}] = {{ {row} }};")
            out_c[m] = calls[m].replace(kernels[m]["fn"] + "(", k["fn"] + "(", 1)
            c = out_c[m][:out_c[m].rindex(")")]
            out_c[m] = c + ("" if c.endswith("(") else ", ") + f"{tname});"
        sig = k["signature"].replace("(void)", "()")
        sig = (sig[:sig.rindex(")")] + ("" if sig.endswith("()") else ", ")
               + f"const {ct} *restrict {PARAM})")
        names = ", ".join(kernels[m]["fn"] for m in members)
        out_k.append({**k, "signature": sig, "body": body.strip("\n"), "tables": "\n".join(tables),
                      "comment": f"shared by {len(members)} kernels ({names}); "
                                 f"{len(varying)} of their integer literals per call in a table"})
    return out_k, out_c


def outline_helpers(helpers: str) -> str:
    """The C helper definitions ``helpers`` (``static inline`` functions, one per block) with
    every helper of more than one statement line marked ``ONNXCC_NOINLINE`` instead of
    ``inline`` (``onnxcc_requantize``: inlined into each shared kernel at -Os it cost more than
    a call), so size mode keeps one copy; one-line helpers (min, max) stay inline."""
    out = []
    for block in re.split(r"(?=^static inline )", helpers, flags=re.M):
        head, _, rest = block.partition("{")
        if block.startswith("static inline ") and rest.count("\n") > 3:
            block = block.replace("static inline ", "static ONNXCC_NOINLINE ", 1)
        out.append(block)
    return "".join(out)
