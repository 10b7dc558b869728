"""Size mode's kernel sharing for the C back end: kernels whose rendered C differs only in integer
literals (shapes, strides, loop bounds, offsets: the layers of a CNN stage) become one C function.

A kernel's body is cut into its integer literals and the text around them (comments dropped); a
minus that negates a literal (``(uint32_t)-128``, ``= -1``) belongs to it, so a zero point of
-128 and one of 14 leave the same text.
Kernels with the same signature and the same text between literals form a group; each literal
whose value differs inside the group becomes ``ksp[i]`` in the group's one function (literals
equal in every call of the group share a slot; ``int16_t`` when every value fits, else
``int32_t``). Each call then passes its values in one of two forms, whichever a byte count of
Thumb-2 calls says is smaller (:func:`_table_pays`):

- its arguments as before plus a ``static const`` array of the literals, or
- the arena base and a ``static const struct`` per call holding the arena offsets of its
  buffers, the addresses of its constant arrays and the literals (the function derives its
  pointers from it): two arguments per call instead of one per buffer.

An ``int`` literal and an ``int32_t`` read compute the same on every target onnxcc builds for
(``int`` is 32 bits), so the shared function computes exactly what the kernels did. Literals that
C needs as constants stay literals: array sizes of declarations, float exponents, octal, macro
arguments (``INT64_C(5)``) and any literal outside ``int32_t`` (they must then be equal within a
group). An unsigned operand compared with ``ksp[i]`` converts it as it converted the literal, but
gcc's -Wsign-compare, quiet for a non-negative constant, warns for a variable: a shared function
with an unsigned type in its body is compiled with that warning off (``sign_compare``).

onnx2c emits one small function per node; onnxcc in size mode emits one plain nest per node
(``Target.optimize``) and then one function per kind of nest, so a MobileNet's thirteen
pointwise convolutions cost one loop nest of code.
"""

from __future__ import annotations

import re
from typing import Any

_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_LITERAL = re.compile(r"(?<![\w.])(\d+)(?![\w.])")
_EXPONENT = re.compile(r"[\d.][eEpP][+-]$")   # the exponent of a float literal (1e-5)
_MACRO_ARG = re.compile(r"INT\d+_C\($")              # INT64_C(5): pasted into a token
# a minus that negates the literal after it (after an opening bracket, a comma, an assignment,
# ?, :, return, or a cast to an integer type), not one that subtracts it
_UNARY_MINUS = re.compile(r"(?:[(,=\[{?:]|\breturn|\((?:const\s+)?(?:u?int(?:8|16|32|64)_t|int)"
                          r"\s*\))\s*-$")
_ARRAY_DECL = re.compile(r"^\s*(?:static\s+)?(?:const\s+)?[A-Za-z_]\w*\s+\**\s*[A-Za-z_]\w*\s*\[")
INT32_MAX = 2**31 - 1
PARAM = "ksp"     # the literals' array (no kernel buffer or variable is named so)
TABLE = "kst"     # the per-call table's parameter
ARENA = "ka"      # the arena's parameter


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
        before = text[max(0, mt.start() - 40):mt.start()]
        if _ARRAY_DECL.match(line) or v > INT32_MAX or (lit.startswith("0") and v) \
                or _MACRO_ARG.search(before):
            cur += lit   # a constant C needs (an array size), too large, or octal: plain text
            continue
        if _UNARY_MINUS.search(cur):   # -128 is one literal: the same text as 14
            cur, v = cur[:-1], -v
        texts.append(cur)
        values.append(v)
        cur = ""
    texts.append(cur + text[pos:])
    return tuple(texts), tuple(values)


def _params(signature: str) -> list[tuple[str, str]]:
    """(declaration, name) of each parameter of a rendered kernel ``signature``
    (``void f(float *restrict y, const float *restrict x)``; none for ``(void)``)."""
    inner = signature[signature.index("(") + 1:signature.rindex(")")].strip()
    if inner in ("", "void"):
        return []
    return [(d.strip(), re.split(r"[\s*]+", d.strip())[-1]) for d in inner.split(",")]


def share_kernels(kernels: list[dict[str, Any]], table_name: Any, struct_name: Any
                  ) -> tuple[list[dict[str, Any]], list[str]]:
    """The kernel functions and their calls after merging every group of two or more
    ``kernels`` that differ only in integer literals and in where their buffers are.

    ``kernels`` are dicts with ``fn``, ``signature``, ``body``, ``comment`` and ``args``: per
    parameter ``("arena", offset, C)`` (a pointer ``a + offset`` into the caller's arena ``a``),
    ``("const", symbol, C)`` (a constant array) or ``("other", C, C)``, C the argument's text. A group's one
    function takes ``a`` and a pointer to a ``static const struct`` per call (named
    ``struct_name(first fn)``, each instance ``table_name(fn)``): the arena offsets, the
    constant arrays and the literals that differ (``ksp``: int16_t when every value fits, else
    int32_t); the other parameters stay parameters. A kernel without a partner keeps its own
    function and its call with the arguments. Returns (kernel dicts, one call statement each)."""
    def call(fn: str, args: list[str]) -> str:
        return f"{fn}({', '.join(args)});"

    groups: dict[tuple, list[int]] = {}
    parts = []
    for i, k in enumerate(kernels):
        texts, values = _split(k["body"])
        sig = k["signature"].replace(k["fn"] + "(", "\0(", 1)
        parts.append((texts, values))
        groups.setdefault((sig, texts), []).append(i)
    out_k: list[dict[str, Any]] = []
    out_c = [call(k["fn"], [_arg_text(a) for a in k["args"]]) for k in kernels]
    for key, members in groups.items():
        k = kernels[members[0]]
        if len(members) < 2:
            continue
        texts = parts[members[0]][0]
        vals = [parts[m][1] for m in members]
        # literals that differ, one slot per distinct column of values (a width and a row
        # length equal in every call share it)
        cols: dict[tuple, int] = {}
        slot: dict[int, int] = {}
        varying: list[int] = []
        for j in range(len(vals[0])):
            col = tuple(v[j] for v in vals)
            if len(set(col)) > 1:
                if col not in cols:
                    cols[col] = len(varying)
                    varying.append(j)
                slot[j] = cols[col]
        small = all(-32768 <= v[j] <= 32767 for v in vals for j in varying)
        pt = "int16_t" if small else "int32_t"
        body = texts[0]
        for j, t in enumerate(texts[1:]):
            body += (f"{PARAM}[{slot[j]}]" if j in slot else str(vals[0][j])) + t
        params = _params(k["signature"])
        same = len({tuple(a[0] for a in kernels[m]["args"]) for m in members}) == 1
        if not same or not _table_pays(k["args"], len(members), bool(varying)):
            _literal_table(kernels, members, out_c, body, varying, vals, pt, table_name)
            continue
        offs = [kernels[m]["args"][q][1] for m in members
                for q, a in enumerate(k["args"]) if a[0] == "arena"]
        ot, sh = _offset_type(offs)
        sname = struct_name(k["fn"])
        fields, prelude, kept = [], [], []
        for (decl, nm), a in zip(params, k["args"]):
            ptr = decl[:decl.rindex(nm)].rstrip()            # "const float *restrict"
            base = ptr.replace("restrict", "").replace("const", "").replace("*", "").strip()
            if a[0] == "arena":
                fields.append(f"{ot} o_{nm};")
                off = f"{TABLE}->o_{nm}" if not sh else f"((size_t){TABLE}->o_{nm} << {sh})"
                prelude.append(f"{decl} = ({'const ' if ptr.startswith('const') else ''}"
                               f"{base} *)({'const ' if ptr.startswith('const') else ''}void *)"
                               f"({ARENA} + {off});")
            elif a[0] == "const":
                fields.append(f"const {base} *{nm};")
                prelude.append(f"{decl} = {TABLE}->{nm};")
            else:
                kept.append(decl)
        if varying:
            fields.append(f"{pt} {PARAM}[{len(varying)}];")
            prelude.append(f"const {pt} *restrict {PARAM} = {TABLE}->{PARAM};")
        if not fields:
            fields.append("char none;")
        tables = [f"struct {sname} {{ {' '.join(fields)} }};"]
        for r, m in enumerate(members):
            km = kernels[m]
            init = [str(a[1] >> sh if a[0] == "arena" else a[1]) for a in km["args"]
                    if a[0] in ("arena", "const")]
            if varying:
                init.append("{ " + ", ".join(str(vals[r][j]) for j in varying) + " }")
            init = init or ["0"]
            tname = table_name(km["fn"])
            tables.append(f"static const struct {sname} {tname} = {{ {', '.join(init)} }};")
            out_c[m] = call(k["fn"], ["a", f"&{tname}"]
                            + [_arg_text(a) for a in km["args"] if a[0] == "other"])
        sig = (f"void {k['fn']}(unsigned char *{ARENA}, const struct {sname} *restrict {TABLE}"
               + "".join(f", {d}" for d in kept) + ")")
        names = ", ".join(kernels[m]["fn"] for m in members)
        grouped = {**k, "signature": sig, "tables": "\n".join(tables),
                   "sign_compare": "uint" in body,
                   "body": "\n".join(prelude + [f"(void){ARENA};", f"(void){TABLE};"]) + "\n" + body.strip("\n"),
                   "comment": f"shared by {len(members)} kernels ({names}): their arena offsets, "
                              f"constants and the {len(varying)} integer literals that differ "
                              "in a table per call"}
        kernels[members[0]] = grouped
        for m in members[1:]:
            kernels[m] = {**kernels[m], "merged": True}
    out_k = [k for k in kernels if not k.get("merged")]
    return out_k, out_c


def _offset_type(offs: list[int]) -> tuple[str, int]:
    """The C type of a group's arena offsets in its tables and the left shift that restores
    them: ``uint16_t`` when every offset fits, else ``uint16_t`` holding the offsets over the
    largest power of two up to 16 (the arena's alignment) that divides them all when they then
    fit (an arena over 64 KiB: ``ka + (o << 4)`` costs no instruction more on Thumb-2, the
    shift is part of the add), else ``int32_t`` with no shift."""
    if all(0 <= o < 65536 for o in offs):
        return "uint16_t", 0
    for sh in (4, 3, 2, 1):
        if all(o >= 0 and o % (1 << sh) == 0 and o >> sh < 65536 for o in offs):
            return "uint16_t", sh
    return "int32_t", 0


def _table_pays(args: list[tuple], calls: int, literals: bool) -> bool:
    """Whether the arena offsets and constant arrays of a group's ``calls`` take less Thumb-2
    code in a table per call than as arguments, by byte counts read off arm-none-eabi-gcc -Os
    listings: an arena pointer argument ``add.w`` 4 bytes, a constant's address a 2-byte load
    and its 4-byte literal, 2 more from the fifth argument on (a store to the stack); the table
    form passes two arguments (8 bytes) and stores 2 bytes per offset and 4 per address, and
    the shared function loads each field once (6 bytes each). Other arguments (the graph's
    inputs and outputs) stay arguments in both forms."""
    fields = [a for a in args if a[0] in ("arena", "const")]
    if not fields:
        return False     # nothing to move: the literals' array alone is the smaller form
    n = len(args) + (1 if literals else 0)
    old = sum(4 if a[0] == "arena" else 6 for a in fields) + (6 if literals else 0) \
        + 2 * max(0, n - 4)
    new = 8 + sum(2 if a[0] == "arena" else 4 for a in fields) \
        + 2 * max(0, len(args) - len(fields) + 2 - 4)
    return calls * (old - new) > 6 * len(fields)


def _literal_table(kernels: list[dict[str, Any]], members: list[int], out_c: list[str],
                   body: str, varying: list[int], vals: list[tuple], pt: str,
                   table_name: Any) -> None:
    """Merge the group ``members`` (indices into ``kernels``) into its first function with the
    arguments kept and only the differing literals in a ``static const`` array per call (one
    more parameter ``ksp``); updates ``kernels`` and the calls ``out_c`` in place."""
    k = kernels[members[0]]
    tables = []
    # one array of every call's row: the calls address it from one base (a literal-pool word
    # and a load per call fewer on Thumb-2 than an array per call: the MLP 784-128-64-10's
    # three Gemms 8 bytes)
    tname, n = table_name(k["fn"]), len(varying)
    if varying:
        rows = ",\n    ".join(", ".join(str(vals[r][j]) for j in varying)
                              for r in range(len(members)))
        tables.append(f"static const {pt} {tname}[{n * len(members)}] = {{\n    {rows}\n}};")
    for r, m in enumerate(members):
        km = kernels[m]
        args = [_arg_text(a) for a in km["args"]]
        if varying:
            args.append(f"{tname} + {n * r}" if r else tname)
        out_c[m] = f"{k['fn']}({', '.join(args)});"
    sig = k["signature"]
    if varying:
        sig = sig.replace("(void)", "()")
        sig = (sig[:sig.rindex(")")] + ("" if sig.endswith("()") else ", ")
               + f"const {pt} *restrict {PARAM})")
    names = ", ".join(kernels[m]["fn"] for m in members)
    kernels[members[0]] = {**k, "signature": sig, "body": body.strip("\n"),
                           "tables": "\n".join(tables), "sign_compare": "uint" in body,
                           "comment": f"shared by {len(members)} kernels ({names}); the "
                                      f"{len(varying)} integer literals that differ in a table "
                                      "per call"}
    for m in members[1:]:
        kernels[m] = {**kernels[m], "merged": True}


def _arg_text(a: tuple) -> str:
    """The C argument of one ``args`` entry of :func:`share_kernels`."""
    return a[2]


def outline_helpers(helpers: str) -> str:
    """The C helper definitions ``helpers`` (``static inline`` functions, one per block) with
    every helper of more than one statement line marked ``ONNXCC_NOINLINE`` instead of
    ``inline`` (and without ``always_inline``; ``onnxcc_requantize``: inlined into each
    shared kernel at -Os it cost more than a call), so size mode keeps one copy; one-line
    helpers (min, max) stay inline."""
    out = []
    for block in re.split(r"(?=^static inline )", helpers, flags=re.M):
        head, _, rest = block.partition("{")
        # the helper's own lines: a block also holds the comment of the helper after it
        # (onnxcc_min_int32 before onnxcc_requantize_narrow's comment was outlined: 1,025
        # instructions more on the int8 MLP); a wrapper of one instruction (``__asm__``:
        # smmla, smlad) costs less inline than its call
        own = _COMMENT.sub("", rest).strip()
        if block.startswith("static inline ") and own.count("\n") > 1 and "__asm__" not in own:
            block = re.sub(r"^static inline (__attribute__\(\(always_inline\)\) )?",
                           "static ONNXCC_NOINLINE ", block, count=1)
        out.append(block)
    return "".join(out)
