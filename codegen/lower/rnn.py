"""LSTM, GRU and RNN as loop IR: one kernel per node, written once for every back end.

Shapes and semantics are those of :mod:`onnxcc.ops.rnn` (``layout`` 0: X (T, N, I), W (D, G*H, I),
R (D, G*H, H), B (D, 2*G*H), Y (T, D, N, H), Y_h/Y_c (D, N, H); ``layout`` 1 puts the batch
first). Per direction (its own loop nest, so a reverse or bidirectional node has no runtime
direction test) and per batch entry ``b``, the state lives in kernel locals::

    h[j], c[j] = initial_h/c[d, b, j] or 0                      # locals h (H,), c (H,)
    for s in 0..T:  t = s  (reverse: T-1-s)
      if t < sequence_lens[b]:                                  # only with sequence_lens
        gates[g] = Wb[g] + Rb[g] + sum_i X[t,b,i] W[d,g,i] + sum_k h[k] R[d,g,k]   # (G*H,)
        per j: the cell update from gates (clip, activations, peepholes), h[j] (and c[j]) in
               place, Y[t, d, b, j] = h[j]
      else: Y[t, d, b, :] = 0
    Y_h[d, b, :] = h;  Y_c[d, b, :] = c

GRU computes z and r first (2H rows), then h~ per j from r (.) h (or r (.) (h Rh + Rbh) with
``linear_before_reset``), then h. A reverse direction walks t = T-1 down to 0 and skips steps at or
past the entry's length, which is the spec's reverse pass over the first L steps. Arithmetic is
in X's dtype (float32 or float64), as the reference computes; every index is a loop variable's
affine function, so verify proves each access without guards.
"""

from __future__ import annotations

from onnxcc.codegen.loops import (Assign, Buffer, Decl, Expr, If, Loop, MulAdd, Select, Stmt,
                                  Store, Unary, Var, affine, as_expr, const, maximum, minimum)
from onnxcc.ir import Node
from onnxcc.ops.rnn import Activation, RNNSpec, rnn_spec

from . import LowerCtx, lower
from .elementwise import SCALAR


def _supports(node: Node) -> str | None:
    """Why ``node`` is refused: X not float32/float64, or a float input of another dtype."""
    dt = node.inputs[0].dtype
    if dt.name not in ("float32", "float64"):
        return f"{node.op} on {dt.name} is not supported (float32/float64 only)"
    for k, v in enumerate(node.inputs):
        if v is not None and k != 4 and v.dtype != dt:
            return f"{node.op} with input {k} of {v.dtype.name} beside X of {dt.name}"
    return None


def activation(a: Activation, x: Expr) -> Expr:
    """The loop-IR expression of activation ``a`` at ``x`` (the spec's formulas; the functions
    elementwise ops share come from :data:`~onnxcc.codegen.lower.elementwise.SCALAR`)."""
    if a.name == "Affine":
        return const(a.alpha, x.dtype) * x + const(a.beta, x.dtype)
    if a.name == "ScaledTanh":
        return const(a.alpha, x.dtype) * Unary("tanh", const(a.beta, x.dtype) * x)
    return SCALAR[a.name]([x], {"alpha": a.alpha, "beta": a.beta})


class _Nest:
    """Builds a node's statements: the spec, its buffers by input/output name (``b``, ``out``),
    the kernel locals h, c and gates, and the index helpers of the layout."""

    def __init__(self, node: Node, ctx: LowerCtx, s: RNNSpec) -> None:
        self.s, self.ctx = s, ctx
        self.dt = ctx.input(0).dtype
        names = ("X", "W", "R", "B", "lens", "h0", "c0", "P")
        self.b = {n: ctx.input(k, n) for k, n in enumerate(names)
                  if k < len(node.inputs) and node.inputs[k] is not None}
        outs = ("Y", "Y_h", "Y_c")
        self.out = {n: ctx.output(k, n) for k, n in enumerate(outs[:len(node.outputs)])}
        self.h = Buffer("h", self.dt, (s.H,), space="local")
        self.c = Buffer("c", self.dt, (s.H,), space="local")
        self.gates = Buffer("gates", self.dt, (s.G * s.H,), space="local")

    def x(self, t: Expr, b: Expr, i: Expr) -> Expr:
        return self.b["X"][(t, b, i) if self.s.layout == 0 else (b, t, i)]

    def y_index(self, t: Expr, d: int, b: Expr, j: Expr) -> tuple[Expr, ...]:
        return tuple(as_expr(e) for e in ((t, d, b, j) if self.s.layout == 0 else (b, t, d, j)))

    def state_index(self, d: int, b: Expr, j: Expr) -> tuple[Expr, ...]:
        return tuple(as_expr(e) for e in ((d, b, j) if self.s.layout == 0 else (b, d, j)))

    def c0(self, v: float) -> Expr:
        return const(v, self.dt)

    def clip(self, e: Expr) -> Expr:
        """``e`` bounded to [-clip, clip] (unchanged without ``clip``)."""
        if self.s.clip is None:
            return e
        return minimum(maximum(e, self.c0(-self.s.clip)), self.c0(self.s.clip))

    def act(self, out: list[Stmt], a: Activation, pre: Expr, name: str,
            clipped: bool = True) -> Var:
        """Append to ``out`` the local ``name`` = ``a(clip(pre))`` (``a(pre)`` when not
        ``clipped``); its input is a local of its own, as activations read it more than once."""
        v, y = Var(name + "_in", self.dt), Var(name, self.dt)
        out += [Decl(v, self.clip(pre) if clipped else pre), Decl(y, activation(a, v))]
        return y

    def matvec(self, d: int, t: Expr, b: Expr, rows: int) -> list[Stmt]:
        """gates[g] = Wb[d, g] + Rb[d, g] + X[t, b, :] . W[d, g] + h . R[d, g] for g in
        0..rows (the first ``rows`` gate rows; h is the previous step's state)."""
        s, ctx = self.s, self.ctx
        g, i, k = ctx.var("g"), ctx.var("i"), ctx.var("k")
        acc = Var(f"acc{d}", self.dt)
        row = g
        bias: Expr = self.c0(0)
        if "B" in self.b:
            bias = self.b["B"][d, row] + self.b["B"][d, affine(row, s.G * s.H)]
        body = [Decl(acc, bias),
                Loop(i, 0, s.I, [Assign(acc, MulAdd(self.x(t, b, i), self.b["W"][d, row, i], acc))]),
                Loop(k, 0, s.H, [Assign(acc, MulAdd(self.h[k], self.b["R"][d, row, k], acc))]),
                Store(self.gates, (row,), acc)]
        return [Loop(g, 0, rows, body)]

    def emit_h(self, out: list[Stmt], d: int, t: Expr, b: Expr, j: Expr, hn: Expr) -> None:
        """Append the stores of the new state ``hn`` at j: h[j] and Y[t, d, b, j]."""
        out.append(Store(self.h, (j,), hn))
        if "Y" in self.out:
            out.append(Store(self.out["Y"], self.y_index(t, d, b, j), hn))

    # ---- one step per op: the statements of step t for batch entry b ----
    def lstm_step(self, d: int, t: Expr, b: Expr) -> list[Stmt]:
        s, H = self.s, self.s.H
        f, g, h = self.s.acts[d]
        j = self.ctx.var("j")
        P = self.b.get("P")
        peep = lambda e, k, c: e + P[d, affine(j, k * H)] * c if P is not None else e
        cp, cn, hn = Var(f"cp{d}", self.dt), Var(f"cn{d}", self.dt), Var(f"hn{d}", self.dt)
        body: list[Stmt] = [Decl(cp, self.c[j])]
        iv = self.act(body, f, peep(self.gates[j], 0, cp), f"ig{d}")
        if s.input_forget:
            fv: Expr = self.c0(1) - iv
        else:
            fv = self.act(body, f, peep(self.gates[affine(j, 2 * H)], 2, cp), f"fg{d}")
        gv = self.act(body, g, self.gates[affine(j, 3 * H)], f"cg{d}")
        body += [Decl(cn, fv * cp + iv * gv), Store(self.c, (j,), cn)]
        ov = self.act(body, f, peep(self.gates[affine(j, H)], 1, cn), f"og{d}")
        hv = self.act(body, h, cn, f"hc{d}", clipped=False)   # onnxruntime: h(Ct) unclipped
        body.append(Decl(hn, ov * hv))
        self.emit_h(body, d, t, b, j, hn)
        return self.matvec(d, t, b, 4 * H) + [Loop(j, 0, H, body)]

    def gru_step(self, d: int, t: Expr, b: Expr) -> list[Stmt]:
        s, H, ctx = self.s, self.s.H, self.ctx
        f, g = s.acts[d]
        zr, j, i, k, j2 = ctx.var("j"), ctx.var("j"), ctx.var("i"), ctx.var("k"), ctx.var("j")
        # z and r: 2H rows, activated in place
        act_zr: list[Stmt] = []
        v = self.act(act_zr, f, self.gates[zr], f"zr{d}")
        act_zr.append(Store(self.gates, (zr,), v))
        # h~[j] into gates[2H + j]
        xa, ha = Var(f"xa{d}", self.dt), Var(f"ha{d}", self.dt)
        B = self.b.get("B")
        row = affine(j, 2 * H)
        wbh = B[d, row] if B is not None else self.c0(0)
        rbh = B[d, affine(j, 5 * H)] if B is not None else self.c0(0)
        lbr = s.linear_before_reset
        hk = self.h[k] if lbr else self.gates[affine(k, H)] * self.h[k]
        hh: list[Stmt] = [
            Decl(xa, wbh if lbr else wbh + rbh),
            Loop(i, 0, s.I, [Assign(xa, MulAdd(self.x(t, b, i), self.b["W"][d, row, i], xa))]),
            Decl(ha, rbh if lbr else self.c0(0)),
            Loop(k, 0, H, [Assign(ha, MulAdd(hk, self.b["R"][d, row, k], ha))])]
        pre = xa + self.gates[affine(j, H)] * ha if lbr else xa + ha
        hv = self.act(hh, g, pre, f"hg{d}")
        hh.append(Store(self.gates, (row,), hv))
        # h = (1 - z) h~ + z h
        z, hn = Var(f"z{d}", self.dt), Var(f"hn{d}", self.dt)
        upd: list[Stmt] = [Decl(z, self.gates[j2]),
                           Decl(hn, (self.c0(1) - z) * self.gates[affine(j2, 2 * H)]
                                + z * self.h[j2])]
        self.emit_h(upd, d, t, b, j2, hn)
        return self.matvec(d, t, b, 2 * H) + [Loop(zr, 0, 2 * H, act_zr), Loop(j, 0, H, hh),
                                              Loop(j2, 0, H, upd)]

    def rnn_step(self, d: int, t: Expr, b: Expr) -> list[Stmt]:
        j = self.ctx.var("j")
        body: list[Stmt] = []
        hn = self.act(body, self.s.acts[d][0], self.gates[j], f"hn{d}")
        self.emit_h(body, d, t, b, j, hn)
        return self.matvec(d, t, b, self.s.H) + [Loop(j, 0, self.s.H, body)]

    def direction(self, d: int) -> list[Stmt]:
        """The loops of direction ``d`` over the batch and the steps."""
        s, ctx = self.s, self.ctx
        b, st, j = ctx.var("b"), ctx.var("s"), ctx.var("j")
        lstm = s.op == "LSTM"
        init: list[Stmt] = [Store(self.h, (j,), self.b["h0"][self.state_index(d, b, j)]
                                  if "h0" in self.b else self.c0(0))]
        if lstm:
            init.append(Store(self.c, (j,), self.b["c0"][self.state_index(d, b, j)]
                              if "c0" in self.b else self.c0(0)))
        per_b: list[Stmt] = [Loop(j, 0, s.H, init)]
        t = affine((st, -1), s.T - 1) if s.reverse[d] else st
        step = {"LSTM": self.lstm_step, "GRU": self.gru_step, "RNN": self.rnn_step}[s.op](d, t, b)
        length = Var(f"len{d}")
        if "lens" in self.b:
            per_b.append(Decl(length, self.b["lens"][b]))
            skip: list[Stmt] = []
            if "Y" in self.out:
                jz = ctx.var("j")
                skip = [Loop(jz, 0, s.H, [Store(self.out["Y"], self.y_index(t, d, b, jz),
                                                self.c0(0))])]
            step = [If(t < length, step, skip)]
        per_b.append(Loop(st, 0, s.T, step))
        jo = ctx.var("j")

        def final(state: Buffer) -> Expr:   # onnxruntime: a zero-length entry's state is 0
            v = state[jo]
            return Select(length > 0, v, self.c0(0)) if "lens" in self.b else v

        fin = [Store(self.out["Y_h"], self.state_index(d, b, jo), final(self.h))] \
            if "Y_h" in self.out else []
        if "Y_c" in self.out:
            fin.append(Store(self.out["Y_c"], self.state_index(d, b, jo), final(self.c)))
        if fin:
            per_b.append(Loop(jo, 0, s.H, fin))
        return [Loop(b, 0, s.N, per_b)]


@lower("LSTM", "GRU", "RNN", supports=_supports)
def _lower_recurrent(node: Node, ctx: LowerCtx):
    """X, W, R, [B, sequence_lens (int32), initial_h, initial_c, P] -> [Y, Y_h, Y_c] (shapes in
    the module docstring): per direction, per batch entry, the steps in order with the state in
    locals h, c and the step's gate pre-activations in ``gates`` (G*H,)."""
    s = rnn_spec(node)
    n = _Nest(node, ctx, s)
    body: list[Stmt] = []
    for d in range(s.D):
        body += n.direction(d)
    locals_ = [n.h, n.gates] + ([n.c] if s.op == "LSTM" else [])
    text = (f"{node.op} {'/'.join('reverse' if r else 'forward' for r in s.reverse)}: "
            f"T={s.T} N={s.N} I={s.I} H={s.H}")
    return ctx.kernel(node.op.lower(), list(n.out.values()), list(n.b.values()), body,
                      comment=text, locals=locals_)
