"""Eq. (13) as a nonlinear program: multiple shooting, stage by stage, with CasADi.

:func:`transcribe` turns an :class:`lgutils.mpc.MPC`'s model, cost, constraints and bounds into
the NLP ``min_w J(w, P) s.t. lbg <= g(w, P) <= ubg, lbw <= w <= ubw``. Everything that changes
between solves is in the parameter vector ``P = [s, (a), (u_prev), phi]``: the state, the fixed
first action of a Q evaluation, the previous input and the learnable parameters. The decision
variables ``w`` are, stage by stage, the input ``u_k`` (except ``u_0 = a`` for Q), the slacks
of the soft constraints, the interior collocation states and the next state ``x_{k+1}``; state
and input bounds are bounds of ``w``. The result, a :class:`Transcription`, also records where
each stage's variables sit in ``w`` (to read the plan back and to shift it for a warm start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import casadi as ca
import numpy as np

from lgutils.mpc.discretisation import collocation_coefficients
from lgutils.mpc.symbols import (
    ParamDict,
    accepts_stage,
    call,
    column,
    gradient_and_hessian,
    options_error,
    scalar,
)

__all__ = ["Transcription", "transcribe", "parameter_dict", "shift_source"]


@dataclass
class Transcription:
    """The NLP of one evaluation mode (``"policy"`` or ``"q"``) and where its pieces are.

    Attributes
    ----------
    mode : str
    nlp : dict
        CasADi's ``{"x": w, "p": P, "f": J, "g": g}``.
    solver : casadi.Function or None
        The IPOPT instance of cold solves (None with ``SolverOptions(method="qp")``, whose QP
        solver :mod:`lgutils.mpc.qp` keeps in ``cache["qp"]``).
    lbw, ubw, lbg, ubg : numpy.ndarray
        Bounds of the variables and of the constraint rows.
    eq_rows : numpy.ndarray
        Indices of the equality rows.
    kinds, sizes : list
        Per block of ``w``: ``(kind, stage)`` with kind ``"u"``, ``"x"``, ``"c"`` (collocation
        states), ``"s"``/``"t"`` (slacks), and its size.
    idx_u, idx_x : dict of int to numpy.ndarray
        Positions of ``u_k`` and ``x_k`` in ``w``.
    idx_slack : numpy.ndarray
        Positions of the slacks.
    n_w, n_p : int
        Sizes of ``w`` and ``P``.
    fixed_rows : tuple or None
        ``(function of P, lower, upper)`` of the stage-0 hard rows that involve only data.
    fg : casadi.Function
        ``(w, P) -> (J, g)``.
    shift_w, shift_g : numpy.ndarray
        Receding-horizon shift of ``w`` and of the rows (see :func:`shift_source`).
    cache : dict
        Functions built on first use (the warm-start solver, the reverse-mode derivative, the
        Lagrangian's parameter gradient, CasADi maps, the QP of ``method="qp"``).
    solver_nlp : dict or None
        The NLP as IPOPT's instances take it, where it differs from ``nlp`` (with
        ``Cost.terminal_derivatives``: the same functions, the rest of the NLP expanded).
    derivative_options : dict
        ``grad_f``, ``jac_g`` and ``hess_lag`` for ``casadi.nlpsol`` (with
        ``Cost.terminal_derivatives``; empty otherwise).
    """

    mode: str
    nlp: dict
    solver: ca.Function | None
    lbw: np.ndarray
    ubw: np.ndarray
    lbg: np.ndarray
    ubg: np.ndarray
    eq_rows: np.ndarray
    kinds: list
    sizes: list
    idx_u: dict
    idx_x: dict
    idx_slack: np.ndarray
    n_w: int
    n_p: int
    fixed_rows: tuple | None
    fg: ca.Function
    shift_w: np.ndarray
    shift_g: np.ndarray
    cache: dict = field(default_factory=dict)
    solver_nlp: dict | None = None
    derivative_options: dict = field(default_factory=dict)

    def make_solver(self, name: str, opts: dict[str, Any]) -> ca.Function:
        """An IPOPT instance of this NLP with ``opts`` (plus its own derivative functions)."""
        opts = {**opts, **self.derivative_options}
        if self.derivative_options:
            opts["expand"] = False  # the functions are already expanded where it pays
        try:
            return ca.nlpsol(name, "ipopt", self.solver_nlp or self.nlp, opts)
        except RuntimeError as exc:
            raise options_error(exc, opts) from exc


def shift_source(blocks: list[tuple[tuple[str, int], int, int]], n: int) -> np.ndarray:
    """Index map of a receding-horizon shift: entry ``i`` is where entry ``i`` takes its value.

    ``blocks`` lists ``((name, stage), start, stop)``; block ``(name, k)`` takes the values of
    ``(name, k + 1)`` when that block exists and has the same size, else it keeps its own.
    """
    src = np.arange(n)
    where = {kind: (a, b) for kind, a, b in blocks}
    for (name, k), a, b in blocks:
        nxt = where.get((name, k + 1))
        if nxt is not None and nxt[1] - nxt[0] == b - a:
            src[a:b] = np.arange(nxt[0], nxt[1])
    return src


def parameter_dict(phi_slices: dict, phi: ca.MX) -> ParamDict:
    """The callables' ``p``: name -> MX of the declared shape, sliced from the flat ``phi``."""
    pdict = ParamDict()
    for name, (sl, shape) in phi_slices.items():
        seg = phi[sl.start : sl.stop]
        pdict[name] = ca.reshape(seg, shape[1], shape[0]).T if len(shape) == 2 else seg
    return pdict


class _Builder:
    """Collects the variables ``w`` and the rows ``g`` of the NLP, block by block."""

    def __init__(self) -> None:
        self.w: list[ca.MX] = []
        self.lbw: list[np.ndarray] = []
        self.ubw: list[np.ndarray] = []
        self.kinds: list[tuple[str, int]] = []
        self.rows: list[ca.MX] = []
        self.lbg: list[np.ndarray] = []
        self.ubg: list[np.ndarray] = []
        self.blocks: list[tuple[tuple[str, int], int, int]] = []
        self.rows_k0: list[tuple[int, int]] = []  # hard stage constraints at k = 0
        self.slacks: list[np.ndarray] = []
        self.n_w = 0
        self.n_g = 0
        # (value, gradient, Hessian) of the terminal cost with Cost.terminal_derivatives
        self.closed_form_terminal: tuple | None = None

    def var(self, sym: ca.MX, lo: np.ndarray, hi: np.ndarray, kind: tuple[str, int]) -> np.ndarray:
        """Add a block of variables; return its positions in ``w``."""
        self.w.append(sym)
        self.lbw.append(lo)
        self.ubw.append(hi)
        self.kinds.append(kind)
        idx = np.arange(self.n_w, self.n_w + sym.numel())
        self.n_w += sym.numel()
        return idx

    def con(self, expr: ca.MX, lo: np.ndarray, hi: np.ndarray, kind: tuple[str, int]) -> tuple:
        """Add a block of rows ``lo <= expr <= hi``; return its ``(start, stop)``."""
        if expr.numel() == 0:
            return (self.n_g, self.n_g)
        self.rows.append(expr)
        self.lbg.append(lo)
        self.ubg.append(hi)
        start = self.n_g
        self.n_g += expr.numel()
        self.blocks.append((kind, start, self.n_g))
        return (start, self.n_g)

    def equal(self, expr: ca.MX, kind: tuple[str, int]) -> tuple:
        n = expr.numel()
        return self.con(expr, np.zeros(n), np.zeros(n), kind)

    def below(self, expr: ca.MX, kind: tuple[str, int]) -> tuple:
        n = expr.numel()
        return self.con(expr, np.full(n, -np.inf), np.zeros(n), kind)

    def soft(self, expr: ca.MX, lin: np.ndarray, quad: np.ndarray, kind: tuple[str, int]) -> list:
        """Soften ``expr <= 0`` with a slack block; return the slacks' two penalty terms."""
        n = expr.numel()
        sig = ca.MX.sym(f"sigma_{kind[1]}" if kind[0] == "s" else "sigma_H", n)
        self.slacks.append(self.var(sig, np.zeros(n), np.full(n, np.inf), kind))
        self.below(expr - sig, ("soft" if kind[0] == "s" else "t_soft", kind[1]))
        return [ca.dot(ca.DM(lin), sig), ca.dot(ca.DM(quad), sig**2)]


def _with_stage(fns: dict[str, Any]) -> dict[str, bool]:
    """Which callables take the stage index ``k`` as an extra argument."""
    return {
        key: fn is not None
        and accepts_stage(fn, 2 if key.startswith("t_") or key == "terminal_cost" else 3)
        for key, fn in fns.items()
    }


def _callables(mpc: Any) -> dict[str, Any]:
    c = mpc.constraints
    return dict(
        dynamics=mpc.model.dynamics,
        stage_cost=mpc.cost.stage,
        terminal_cost=mpc.cost.terminal,
        eq=c.eq,
        ineq=c.ineq,
        soft=c.soft,
        t_eq=c.terminal_eq,
        t_ineq=c.terminal_ineq,
        t_soft=c.terminal_soft,
    )


def _stage(mpc, nlp: _Builder, fns, with_k, k, x_k, u_k, u_prev_k, pk) -> Any:
    """Stage ``k``'s cost and its constraint rows; returns the cost terms to add to ``J``."""
    lk = scalar("stage_cost", call(fns["stage_cost"], (x_k, u_k, pk), k, with_k["stage_cost"]))
    terms = [(mpc.discount**k) * lk]
    if mpc.move_weight is not None:
        du = u_k - u_prev_k
        terms.append(ca.bilin(ca.DM(mpc.move_weight), du, du))
    if fns["eq"] is not None:
        ge = column("eq_constraints", call(fns["eq"], (x_k, u_k, pk), k, with_k["eq"]))
        rows = nlp.equal(ge, ("eq", k))
        if k == 0:
            nlp.rows_k0.append(rows)
    if fns["ineq"] is not None:
        hi_ = column("ineq_constraints", call(fns["ineq"], (x_k, u_k, pk), k, with_k["ineq"]))
        rows = nlp.below(hi_, ("ineq", k))
        if k == 0:
            nlp.rows_k0.append(rows)
    if fns["soft"] is not None:
        hs = column("soft_constraints", call(fns["soft"], (x_k, u_k, pk), k, with_k["soft"]))
        n_soft = hs.numel()
        if n_soft:
            lin = mpc.constraints.penalty("soft_linear", n_soft)
            quad = mpc.constraints.penalty("soft_quadratic", n_soft)
            terms += nlp.soft(hs, lin, quad, ("s", k))
    return terms


def _dynamics(mpc, nlp: _Builder, fns, with_k, k, x_k, u_k, pk, Cc) -> ca.MX:
    """The rows tying ``x_{k+1}`` to ``(x_k, u_k)``; returns the new symbol ``x_{k+1}``."""
    nx, model = mpc.nx, mpc.model
    x_next = ca.MX.sym(f"x_{k + 1}", nx)

    def ode(xx):
        return column("dynamics", call(fns["dynamics"], (xx, u_k, pk), k, with_k["dynamics"]), nx)

    if model.integrator == "discrete":
        nlp.equal(x_next - ode(x_k), ("dyn", k))
    elif model.integrator == "rk4":
        h = model.dt / model.substeps
        xi = x_k
        for _ in range(model.substeps):
            k1 = ode(xi)
            k2 = ode(xi + h / 2 * k1)
            k3 = ode(xi + h / 2 * k2)
            k4 = ode(xi + h * k3)
            xi = xi + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        nlp.equal(x_next - xi, ("dyn", k))
    else:
        # Radau's last point is the end of the interval: x_{k+1} itself is the last collocation
        # state, so only the d - 1 interior points are extra variables
        d = model.degree
        n_c = nx * (d - 1)
        Xc = [x_k]
        if n_c:
            Xc_sym = ca.MX.sym(f"xc_{k}", n_c)
            nlp.var(Xc_sym, np.full(n_c, -np.inf), np.full(n_c, np.inf), ("c", k))
            Xc += [Xc_sym[r * nx : (r + 1) * nx] for r in range(d - 1)]
        Xc.append(x_next)
        for r in range(d):
            xp = sum(Cc[j, r] * Xc[j] for j in range(d + 1))
            nlp.equal(xp - model.dt * ode(Xc[r + 1]), (f"dyn{r}", k))
    return x_next


def _terminal(mpc, nlp: _Builder, fns, with_k, x_H, pdict) -> list:
    """The terminal cost and constraints on ``x_H``; returns the cost terms to add to ``J``."""
    H = mpc.horizon
    terms = []
    if fns["terminal_cost"] is not None:
        VH = call(fns["terminal_cost"], (x_H, pdict), H, with_k["terminal_cost"])
        term = (mpc.discount**H) * scalar("terminal_cost", VH)
        derivatives = mpc.cost.terminal_derivatives
        if derivatives is None:
            terms.append(term)
        else:
            out = call(derivatives, (x_H, pdict), H, accepts_stage(derivatives, 2))
            grad, hess = gradient_and_hessian("terminal_derivatives", out, mpc.nx)
            nlp.closed_form_terminal = (term, (mpc.discount**H) * grad, (mpc.discount**H) * hess)
    if fns["t_eq"] is not None:
        ge = call(fns["t_eq"], (x_H, pdict), H, with_k["t_eq"])
        nlp.equal(column("terminal_eq_constraints", ge), ("t_eq", H))
    if fns["t_ineq"] is not None:
        hi_ = call(fns["t_ineq"], (x_H, pdict), H, with_k["t_ineq"])
        nlp.below(column("terminal_ineq_constraints", hi_), ("t_ineq", H))
    if fns["t_soft"] is not None:
        hs = column(
            "terminal_soft_constraints", call(fns["t_soft"], (x_H, pdict), H, with_k["t_soft"])
        )
        m = hs.numel()
        lin = mpc.constraints.penalty("terminal_soft_linear", m)
        quad = mpc.constraints.penalty("terminal_soft_quadratic", m)
        terms += nlp.soft(hs, lin, quad, ("t", H))
    return terms


def _split_fixed_rows(nlp: _Builder, P: ca.MX, mode: str):
    """Take out the stage-0 hard rows that involve only data: checked numerically, not by IPOPT."""
    wv = ca.vertcat(*nlp.w)
    G = ca.vertcat(*nlp.rows) if nlp.rows else ca.MX(0, 1)
    lbg = np.concatenate(nlp.lbg) if nlp.lbg else np.zeros(0)
    ubg = np.concatenate(nlp.ubg) if nlp.ubg else np.zeros(0)
    fixed = [i for a, b in nlp.rows_k0 for i in range(a, b) if not ca.depends_on(G[i], wv)]
    keep = np.setdiff1d(np.arange(G.numel()), fixed)
    pre = None
    if fixed:
        rows = ca.vertcat(*[G[i] for i in fixed])
        pre = (ca.Function(f"fixed_rows_{mode}", [P], [rows]), lbg[fixed], ubg[fixed])
        G = ca.vertcat(*[G[i] for i in keep]) if len(keep) else ca.MX(0, 1)
        lbg, ubg = lbg[keep], ubg[keep]
    return wv, G, lbg, ubg, keep, pre


def _closed_form_functions(nlp: _Builder, wv, P, J_rest, G, idx_H: np.ndarray, mode: str):
    """IPOPT's NLP and derivative functions when the terminal cost brings its own derivatives.

    Everything but the terminal cost is expanded to ``SX`` (objective, constraints, their
    gradient, Jacobian and the Lagrangian's Hessian); the terminal cost's gradient and Hessian
    are placed at ``x_H``'s positions in ``w``.
    """
    V, grad, hess = nlp.closed_form_terminal
    lam_f, lam_g = ca.MX.sym("lam_f"), ca.MX.sym("lam_g", G.numel())
    # one function per output: a call computes all of a function's outputs
    f, g = ca.Function(f"rest_fg_{mode}", [wv, P], [J_rest, G]).expand()(wv, P)
    df = ca.Function(f"rest_grad_{mode}", [wv, P], [ca.gradient(J_rest, wv)]).expand()(wv, P)
    dg = ca.Function(f"rest_jac_{mode}", [wv, P], [ca.jacobian(G, wv)]).expand()(wv, P)
    lagrangian = lam_f * J_rest + ca.dot(lam_g, G)
    rest_hessian = ca.Function(
        f"rest_hess_{mode}", [wv, P, lam_f, lam_g], [ca.triu(ca.hessian(lagrangian, wv)[0])]
    ).expand()
    d2 = rest_hessian(wv, P, lam_f, lam_g)
    nx = idx_H.size
    E = ca.DM(ca.Sparsity.triplet(wv.numel(), nx, idx_H.tolist(), list(range(nx))), 1.0)
    f = f + V
    options = {
        "grad_f": ca.Function(f"grad_f_{mode}", [wv, P], [f, df + E @ grad]),
        "jac_g": ca.Function(f"jac_g_{mode}", [wv, P], [g, dg]),
        "hess_lag": ca.Function(
            f"hess_lag_{mode}", [wv, P, lam_f, lam_g], [d2 + ca.triu(E @ (lam_f * hess) @ E.T)]
        ),
    }
    return {"x": wv, "p": P, "f": f, "g": g}, options


def _shifts(nlp: _Builder, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each variable and each kept row takes its value from in a receding-horizon shift."""
    starts = np.cumsum([0, *[v.numel() for v in nlp.w]])
    shift_w = shift_source(
        [(kind, starts[i], starts[i + 1]) for i, kind in enumerate(nlp.kinds)], nlp.n_w
    )
    shift_g = shift_source(nlp.blocks, nlp.n_g)
    new_row = np.full(nlp.n_g, -1)
    new_row[keep] = np.arange(keep.size)
    src = new_row[shift_g[keep]]
    return shift_w, np.where(src >= 0, src, np.arange(keep.size))


def transcribe(mpc: Any, mode: str) -> Transcription:
    """The NLP of ``mpc`` for ``mode`` (``"policy"``: eq. 14; ``"q"``: eq. 13 with ``u_0 = a``).

    ``mpc`` is an :class:`lgutils.mpc.MPC`; this reads its model, cost, constraints, bounds,
    parameter layout and solver options, and builds the IPOPT solver (not for
    ``SolverOptions(method="qp")``).
    """
    nx, nu, H = mpc.nx, mpc.nu, mpc.horizon
    fns = _callables(mpc)
    with_k = _with_stage(fns)
    P_s = ca.MX.sym("s", nx)
    P_a = ca.MX.sym("a", nu) if mode == "q" else ca.MX(0, 1)
    P_up = ca.MX.sym("u_prev", nu) if mpc.use_u_prev else ca.MX(0, 1)
    P_phi = ca.MX.sym("phi", mpc.n_phi)
    P = ca.vertcat(P_s, P_a, P_up, P_phi)
    pdict = parameter_dict(mpc.phi_slices, P_phi)
    Cc = (
        collocation_coefficients(mpc.model.degree)[1]
        if mpc.model.integrator == "collocation"
        else None
    )
    nlp, idx_u, idx_x = _Builder(), {}, {}
    J, x_k, u_prev_k = ca.MX(0), P_s, P_up
    for k in range(H):
        if mode == "q" and k == 0:
            u_k = P_a
        else:
            u_k = ca.MX.sym(f"u_{k}", nu)
            idx_u[k] = nlp.var(u_k, mpc.u_lb, mpc.u_ub, ("u", k))
        pk = ParamDict(pdict)
        if mpc.use_u_prev:
            pk["u_prev"] = u_prev_k
        for term in _stage(mpc, nlp, fns, with_k, k, x_k, u_k, u_prev_k, pk):
            J = J + term
        x_next = _dynamics(mpc, nlp, fns, with_k, k, x_k, u_k, pk, Cc)
        bounded = k + 1 < H or mpc.bounds.terminal
        lo = mpc.x_lb if bounded else np.full(nx, -np.inf)
        hi = mpc.x_ub if bounded else np.full(nx, np.inf)
        idx_x[k + 1] = nlp.var(x_next, lo, hi, ("x", k + 1))
        x_k, u_prev_k = x_next, u_k
    for term in _terminal(mpc, nlp, fns, with_k, x_k, pdict):
        J = J + term
    wv, G, lbg, ubg, keep, pre = _split_fixed_rows(nlp, P, mode)
    shift_w, shift_g = _shifts(nlp, keep)
    solver_nlp, derivative_options = None, {}
    if nlp.closed_form_terminal is not None:
        solver_nlp, derivative_options = _closed_form_functions(nlp, wv, P, J, G, idx_x[H], mode)
        J = J + nlp.closed_form_terminal[0]
    problem = {"x": wv, "p": P, "f": J, "g": G}
    result = Transcription(
        mode=mode,
        nlp=problem,
        solver=None,
        lbw=np.concatenate(nlp.lbw),
        ubw=np.concatenate(nlp.ubw),
        lbg=lbg,
        ubg=ubg,
        eq_rows=np.flatnonzero(lbg == ubg),
        kinds=nlp.kinds,
        sizes=[v.numel() for v in nlp.w],
        idx_u=idx_u,
        idx_x=idx_x,
        idx_slack=np.concatenate(nlp.slacks) if nlp.slacks else np.zeros(0, dtype=int),
        n_w=nlp.n_w,
        n_p=P.numel(),
        fixed_rows=pre,
        fg=ca.Function(f"fg_{mode}", [wv, P], [J, G]),
        shift_w=shift_w,
        shift_g=shift_g,
        solver_nlp=solver_nlp,
        derivative_options=derivative_options,
    )
    if mpc.solver_options.method == "nlp":  # method="qp" solves with lgutils.mpc.qp instead
        result.solver = result.make_solver(f"mpc_{mode}", mpc.solver_options.nlpsol_options())
    return result
