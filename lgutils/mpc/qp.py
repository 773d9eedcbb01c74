"""Eq. (13) as a quadratic program: solved by a QP solver, differentiated through its KKT system.

When the cost is quadratic and the dynamics and constraints are linear in the decision variables
``w`` (a linear model, quadratic costs, linear constraints: case study B, with or without input
bounds), the transcribed problem of :mod:`lgutils.mpc.transcription` is, for every parameter
vector ``P = [s, (a), (u_prev), phi]``, the QP

    min_w 1/2 w^T H(P) w + g(P)^T w + c(P)   s.t.  lbg <= A(P) w + b(P) <= ubg,  lbw <= w <= ubw

with ``H`` the Hessian of ``J`` in ``w``, ``g`` its gradient at ``w = 0``, ``A`` the Jacobian
of the rows ``G`` and ``b = G(0, P)``. ``SolverOptions(method="qp")`` solves it with one of
CasADi's ``conic`` plugins (DAQP by default) instead of IPOPT; the problem is checked to be a QP
when the MPC is built (:func:`check_quadratic`).

Speed comes from doing little per state in Python: one CasADi function of ``P`` computes the
QP data, solves the QP, evaluates the solution's value, checks its optimality conditions and --
for the sensitivities -- solves the KKT system, in a single call evaluated in place through
CasADi's function buffer (no conversion of inputs and outputs), and in a single call for a whole
batch (a CasADi ``map``). The solver's status is not visible inside such a function, so the
solution is checked instead (:func:`check_solution`: finite, feasible, stationary and
complementary within :data:`KKT_TOL`); a failed check re-solves the QP with a direct call to
read the solver's own status for the :class:`~lgutils.mpc.MPCSolveError`. There is never a
silent garbage action. The QP solver starts every solve from scratch (no warm start) and reports
no iteration count (``iterations = -1``).

Sensitivities: the active set at a solution is read from the multipliers and the residuals
(equality rows, and inequality rows and bounds whose multiplier exceeds their distance to the
bound: the rule of :func:`lgutils.mpc.sensitivity.active_multipliers`). Differentiating the KKT
conditions ``H w + g + A^T lam_g + lam_x = 0``, ``A_a w + b_a = bound_a`` with respect to ``P``
gives, with ``z = (w, lam_g)``,

    K dz = -R,   K = [[H, A^T], [A, 0]],   R = [d(grad_w L)/dP; dG/dP]

in which the unknowns that vanish (``dw_j`` of a variable on an active bound, ``dlam_i`` of an
inactive row) have their rows and columns replaced by those of the identity and their
right-hand sides by 0. Then ``d u_0*/dP = E^T dz = -(K^{-1} E)^T R`` (``E`` picks ``u_0``): one
solve with ``nu`` right-hand sides (sparse QR, inside the call). Exact where strict
complementarity and linearly independent active constraints hold. At degenerate points the
solution map need not be differentiable: a weakly active constraint (zero multiplier) counts as
inactive, and where dependent active constraints make ``K`` singular the least-squares solution
(numpy) is returned, as the NLP path does. Value gradients ``dV/dP`` and ``dQ/dP`` are the
Lagrangian's parameter gradient at the solution (envelope theorem), as for the NLP path. The
tests (``tests/test_mpc_qp.py``) hold both to IPOPT's, to central finite differences and to the
closed forms of case study B.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import casadi as ca
import numpy as np

from lgutils.mpc.results import MPCResult, PolicySensitivity, QSensitivity
from lgutils.mpc.symbols import ParamDict, accepts_stage, call, column
from lgutils.mpc.transcription import Transcription, parameter_dict

__all__ = [
    "QuadraticProgram",
    "check_quadratic",
    "build",
    "check_solution",
    "solve",
    "solve_failure",
    "policy_sensitivity",
    "q_sensitivity",
    "sensitivity_batch",
    "solve_many",
]

#: Tolerance of the optimality check of a QP solution (relative to the problem's scale).
KKT_TOL = 1e-6

#: The status of a solve that passed the check (one of :data:`lgutils.mpc.SUCCESS_STATUSES`).
SUCCESS = "Solve_Succeeded"

#: DAQP's exit flags, as names.
DAQP_STATUS = {
    2: "soft_optimal",
    1: "optimal",
    0: "setup_failed",
    -1: "infeasible",
    -2: "cycling",
    -3: "unbounded",
    -4: "iteration_limit",
    -5: "nonconvex",
    -6: "overdetermined_initial_active_set",
}


@dataclass
class QuadraticProgram:
    """The QP of one evaluation mode, and the CasADi functions that solve and differentiate it.

    Attributes
    ----------
    conic : casadi.Function
        The QP solver (CasADi ``conic``), called directly only to diagnose a failed solve.
    data : casadi.Function
        ``P -> (H, g, A, b)``.
    kkt : casadi.Function
        ``(w, lam_g, P) -> (K, R, grad_P L)``: the KKT matrix ``[[H, A^T], [A, 0]]``, the
        parameter derivatives ``[d(grad_w L)/dP; dG/dP]`` and the Lagrangian's parameter
        gradient.
    fg : casadi.Function
        ``(w, P) -> (J, G)``.
    n_w, n_g, n_p : int
    lbw, ubw, lbg, ubg : numpy.ndarray
    idx_u0 : numpy.ndarray
        Positions of ``u_0`` in ``w`` (policy mode).
    plugin : str
        The conic plugin's name.
    calls : dict
        Built on first use: by kind (:data:`KINDS`), the composed function of ``P`` and its
        output layout; by ``(kind, N)``, its in-place evaluation for N states (a CasADi map).
    """

    conic: ca.Function
    data: ca.Function
    kkt: ca.Function
    fg: ca.Function
    n_w: int
    n_g: int
    n_p: int
    lbw: np.ndarray
    ubw: np.ndarray
    lbg: np.ndarray
    ubg: np.ndarray
    idx_u0: np.ndarray
    plugin: str
    calls: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# is it a QP?
# ---------------------------------------------------------------------------------------------
def _pieces(mpc: Any) -> list[tuple[str, Any, bool, str]]:
    """The user's callables: (name, callable, is it a cost, which arguments it takes)."""
    c = mpc.constraints
    return [
        ("the stage cost (Cost.stage)", mpc.cost.stage, True, "xu"),
        ("the terminal cost (Cost.terminal)", mpc.cost.terminal, True, "x"),
        ("the dynamics (Model.dynamics)", mpc.model.dynamics, False, "xu"),
        ("Constraints.eq", c.eq, False, "xu"),
        ("Constraints.ineq", c.ineq, False, "xu"),
        ("Constraints.soft", c.soft, False, "xu"),
        ("Constraints.terminal_eq", c.terminal_eq, False, "x"),
        ("Constraints.terminal_ineq", c.terminal_ineq, False, "x"),
        ("Constraints.terminal_soft", c.terminal_soft, False, "x"),
    ]


def _offending(mpc: Any, cost: bool) -> list[str]:
    """Which callables make the cost non-quadratic (``cost=True``) or the rows non-linear."""
    x, u = ca.MX.sym("x", mpc.nx), ca.MX.sym("u", mpc.nu)
    pdict = ParamDict(parameter_dict(mpc.phi_slices, ca.MX.sym("phi", mpc.n_phi)))
    if mpc.use_u_prev:
        pdict["u_prev"] = ca.MX.sym("u_prev", mpc.nu)
    found = []
    for name, fn, is_cost, args in _pieces(mpc):
        if fn is None or is_cost != cost:
            continue
        var = ca.vertcat(x, u) if args == "xu" else x
        base = (x, u, pdict) if args == "xu" else (x, pdict)
        with_k = accepts_stage(fn, len(base))
        stages = range(mpc.horizon) if with_k else [mpc.horizon if args == "x" else 0]
        for k in stages:
            expr = column(name, call(fn, base, k, with_k))
            test = ca.is_quadratic if cost else ca.is_linear
            if not test(expr, var):
                found.append(name)
                break
    return found


def check_quadratic(mpc: Any, b: Transcription) -> None:
    """Raise ValueError unless the problem of ``b`` is a QP in ``w`` for every ``P``.

    The cost must be quadratic and the rows (dynamics and constraints) linear in the decision
    variables; the message names the callables that are not.
    """
    w, J, G = b.nlp["x"], b.nlp["f"], b.nlp["g"]
    for is_cost, ok, what in (
        (True, ca.is_quadratic(J, w), "quadratic"),
        (False, G.numel() == 0 or ca.is_linear(G, w), "linear"),
    ):
        if not ok:
            names = _offending(mpc, is_cost) or ["the objective" if is_cost else "the rows"]
            kind = "cost" if is_cost else "dynamics or constraints"
            raise ValueError(
                f"SolverOptions(method='qp') needs a quadratic program, but {', '.join(names)} "
                f"is not {what} in the decision variables (inputs, states, slacks); the {kind} "
                "must be, or use method='nlp'"
            )


# ---------------------------------------------------------------------------------------------
# the CasADi functions
# ---------------------------------------------------------------------------------------------
def _expand(fn: ca.Function, expand: bool) -> ca.Function:
    """``fn`` as scalar operations (SX, several times faster to evaluate) where it can be."""
    if not expand:
        return fn
    try:
        return fn.expand()
    except RuntimeError:  # e.g. a callable holding a CasADi function that cannot be expanded
        return fn


def _functions(b: Transcription, expand: bool) -> tuple[ca.Function, ca.Function, ca.Function]:
    """``data: P -> (H, g, A, b)``, ``kkt: (w, lam_g, P) -> (K, R, grad_P L)`` and ``fg``."""
    w, P = ca.MX.sym("w", b.n_w), ca.MX.sym("P", b.n_p)
    lam = ca.MX.sym("lam_g", b.lbg.size)
    J, G = b.fg(w, P)
    H, grad = ca.hessian(J, w)
    A = ca.jacobian(G, w)
    # H and A are constant in w (checked) but may still hold w in their expressions
    at_w = ca.Function("qp_data_at_w", [w, P], [H, grad, A, G])
    data = ca.Function(f"qp_data_{b.mode}", [P], at_w(ca.DM.zeros(b.n_w), P))
    L = J + ca.dot(lam, G)
    K = ca.blockcat([[H, A.T], [A, ca.MX(G.numel(), G.numel())]])
    R = ca.vertcat(ca.jacobian(ca.gradient(L, w), P), ca.jacobian(G, P))
    kkt = ca.Function(f"qp_kkt_{b.mode}", [w, lam, P], [K, R, ca.gradient(L, P)])
    return _expand(data, expand), _expand(kkt, expand), _expand(b.fg, expand)


def build(mpc: Any, b: Transcription) -> QuadraticProgram:
    """The :class:`QuadraticProgram` of ``b`` (checked with :func:`check_quadratic`).

    Raises
    ------
    ValueError
        The problem is not a QP, or CasADi rejects the plugin or its options.
    """
    check_quadratic(mpc, b)
    opts = mpc.solver_options
    data, kkt, fg = _functions(b, opts.nlpsol.get("expand", True))
    sparsity = {"h": data.sparsity_out(0), "a": data.sparsity_out(2)}
    conic_opts = opts.conic_options()
    try:
        conic = ca.conic(f"qp_{b.mode}", opts.qpsol, sparsity, conic_opts)
    except RuntimeError as exc:
        reason = " ".join(str(exc).split("Did you mean")[0].split()[-40:])
        raise ValueError(
            f"SolverOptions(qpsol={opts.qpsol!r}, qpsol_options=...) was rejected by CasADi's "
            f"conic: {reason} (options given: {conic_opts})"
        ) from exc
    return QuadraticProgram(
        conic=conic,
        data=data,
        kkt=kkt,
        fg=fg,
        n_w=b.n_w,
        n_g=b.lbg.size,
        n_p=b.n_p,
        lbw=b.lbw,
        ubw=b.ubw,
        lbg=b.lbg,
        ubg=b.ubg,
        idx_u0=b.idx_u[0] if 0 in b.idx_u else np.zeros(0, dtype=int),
        plugin=opts.qpsol,
    )


def _bound_terms(val, lam, lb: np.ndarray, ub: np.ndarray) -> tuple:
    """CasADi expressions, per entry: infeasibility and complementarity violation relative to
    ``1 + |bound|``, and whether the bound is active (an equality, or a multiplier larger than
    its distance to the bound: the rule of :func:`lgutils.mpc.sensitivity.active_multipliers`).
    """
    finite_lb, finite_ub = np.where(np.isfinite(lb), lb, 0.0), np.where(np.isfinite(ub), ub, 0.0)
    scale = ca.DM(1.0 + np.abs(finite_lb) + np.abs(finite_ub))
    lb, ub = ca.DM(lb), ca.DM(ub)
    dist = ca.if_else(lam > 0, ub - val, val - lb)  # inf at an infinite bound
    infeas = ca.fmax(lb - val, val - ub) / scale
    comp = ca.fmin(ca.fabs(lam), ca.fmax(dist / scale, 0.0))
    active = ca.logic_or(lb == ub, ca.fabs(lam) > ca.fmax(dist, 0.0))
    return infeas, comp, active


def _solution(qp: QuadraticProgram, P: ca.MX) -> tuple:
    """The QP solved at ``P``: ``([w, lam_x, lam_g, G(w), J(w), violation], K, R, grad, rep)``.

    ``rep`` marks the KKT rows eliminated at the active set (1.0): variables on an active
    bound (``dw_j = 0``) and inactive inequality rows (``dlam_i = 0``).
    """
    H, g, A, b = qp.data(P)
    sol = qp.conic(h=H, g=g, a=A, lba=qp.lbg - b, uba=qp.ubg - b, lbx=qp.lbw, ubx=qp.ubw)
    w, lam_x, lam_g = sol["x"], sol["lam_x"], sol["lam_a"]
    J, G = qp.fg(w, P)
    Hw, Al = ca.mtimes(H, w), ca.mtimes(A.T, lam_g)
    terms = ca.fabs(ca.vertcat(Hw, g, Al, lam_x))
    stat = ca.fabs(Hw + g + Al + lam_x) / ca.fmax(1.0, ca.mmax(terms))
    inf_w, comp_w, act_w = _bound_terms(w, lam_x, qp.lbw, qp.ubw)
    inf_g, comp_g, act_g = _bound_terms(G, lam_g, qp.lbg, qp.ubg)
    viol = ca.mmax(ca.vertcat(0.0, stat, inf_w, comp_w, inf_g, comp_g))
    K, R, grad = qp.kkt(w, lam_g, P)
    rep = ca.vertcat(act_w, ca.logic_not(act_g))
    return [w, lam_x, lam_g, G, J, viol], K, R, grad, rep


def _action_jacobian_expr(qp: QuadraticProgram, K, R, rep) -> ca.MX:
    """``d u_0*/dP`` (nu x n_p) from the KKT system at the active set, in CasADi.

    Eliminated unknowns are 0, so their rows *and* columns become identity (the matrix stays
    symmetric) and their right-hand sides 0: ``K_a = D K D + I - D``, ``D = diag(1 - rep)``;
    ``dz = -K_a^{-1} D R`` and ``d u_0*/dP = E^T dz = -(K_a^{-1} E)^T D R`` (one solve, sparse
    QR). A singular ``K_a`` makes the evaluation fail; :func:`_degenerate` takes over.
    """
    n, nu = qp.n_w + qp.n_g, qp.idx_u0.size
    keep = 1 - rep
    Ka = K * ca.mtimes(keep, keep.T) + ca.diag(rep)
    E = np.zeros((n, nu))
    E[qp.idx_u0, np.arange(nu)] = 1.0
    y = ca.solve(Ka, ca.DM(E), "qr")
    return -ca.mtimes(y.T, R * ca.repmat(keep, 1, qp.n_p))


#: The kinds of composed function (:func:`_composed`): what one call evaluates besides the solution.
KINDS = ("solve", "grad", "sens", "kkt")


def _composed(qp: QuadraticProgram, kind: str) -> tuple[ca.Function, dict[str, tuple]]:
    """``P -> one column`` for ``kind``, and where each part sits in it (name -> slice, shape).

    All kinds: ``w, lam_x, lam_g, G(w), J(w)`` and the largest violation of the optimality
    conditions. ``"grad"``: also the Lagrangian's parameter gradient; ``"sens"``: also
    ``d u_0*/dP``; ``"kkt"`` (the fallback at degenerate points): the gradient, the eliminated
    rows, and ``K`` and ``R`` (dense, column-major).
    """
    P = ca.MX.sym("P", qp.n_p)
    head, K, R, grad, rep = _solution(qp, P)
    n, nu = qp.n_w + qp.n_g, qp.idx_u0.size
    parts = list(zip(("w", "lam_x", "lam_g", "g", "f", "viol"), head, strict=True))
    if kind != "solve":
        parts.append(("grad", grad))
    if kind == "sens":
        parts.append(("du", _action_jacobian_expr(qp, K, R, rep)))
    if kind == "kkt":
        parts += [("rep", rep), ("KT", ca.densify(K)), ("RT", ca.densify(R))]
    shapes = {"du": (qp.n_p, nu), "KT": (n, n), "RT": (qp.n_p, n)}  # transposed: column-major
    layout, i = {}, 0
    for name, expr in parts:
        layout[name] = (slice(i, i + expr.numel()), shapes.get(name, (expr.numel(),)))
        i += expr.numel()
    # dense: a structurally zero part (e.g. the rows of a one-step horizon) keeps its place
    fn = ca.Function(f"qp_{kind}", [P], [ca.densify(ca.vertcat(*[ca.vec(e) for _, e in parts]))])
    return fn, layout


class _InPlace:
    """A CasADi function of one dense input evaluated in place through its buffer.

    Calling a CasADi function from Python converts every input and output (a DM per output,
    then numpy): for the few hundred numbers of a solve that costs more than the solve. The
    buffer binds numpy arrays to the function's memory once.
    """

    def __init__(self, fn: ca.Function, rows: int) -> None:
        self.fn, self.rows = fn, rows
        self.arg = np.zeros((rows, fn.nnz_in(0) // rows))
        self.res = np.zeros((rows, fn.nnz_out(0) // rows))
        self.buf, self.trigger = fn.buffer()
        self.buf.set_arg(0, memoryview(self.arg))
        self.buf.set_res(0, memoryview(self.res))

    def __getstate__(self) -> tuple[ca.Function, int]:  # a copy binds a buffer of its own
        return self.fn, self.rows

    def __setstate__(self, state: tuple[ca.Function, int]) -> None:
        self.__init__(*state)

    def __call__(self, P: np.ndarray) -> np.ndarray:
        """``P`` (rows, n_p) -> a copy of the output (rows, n_out), NaN if the call failed."""
        self.arg[...] = P
        self.trigger()
        if self.buf.ret() != 0:  # e.g. a singular KKT matrix in the QR solve
            self.res[...] = np.nan
        return self.res.copy()


def _call(qp: QuadraticProgram, kind: str, P: np.ndarray) -> dict[str, np.ndarray]:
    """The parts of the composed function of ``kind`` at the rows of ``P`` (N, n_p), each with a
    leading axis N (all NaN if the evaluation failed)."""
    N = P.shape[0]
    if (kind, N) not in qp.calls:
        if kind not in qp.calls:
            qp.calls[kind] = _composed(qp, kind)
        fn = qp.calls[kind][0]
        qp.calls[(kind, N)] = _InPlace(fn if N == 1 else fn.map(N, "serial"), N)
    out = qp.calls[(kind, N)](P)
    layout = qp.calls[kind][1]
    return {name: out[:, sl].reshape(N, *shape) for name, (sl, shape) in layout.items()}


def check_solution(parts: dict[str, np.ndarray]) -> np.ndarray:
    """The largest violation of the optimality conditions, per solution (shape ``(N,)``).

    Computed in the composed function: infeasibility of the bounds and rows (relative to
    ``1 + |bound|``), the stationarity residual ``H w + g + A^T lam_g + lam_x`` relative to the
    largest of its terms, and complementarity (``min(|lam|, distance to the bound)``, relative);
    here ``inf`` where the solution or the objective is not finite. A solution is accepted when
    this is at most :data:`KKT_TOL`.
    """
    finite = np.isfinite(parts["w"]).all(axis=1) & np.isfinite(parts["f"][:, 0])
    return np.where(finite, parts["viol"][:, 0], np.inf)


def _status(qp: QuadraticProgram, pv: np.ndarray) -> tuple[str, int]:
    """Re-solve directly to read the solver's own status: ``(status, iterations)``."""
    H, g, A, b = qp.data(pv)
    qp.conic(h=H, g=g, a=A, lba=qp.lbg - b, uba=qp.ubg - b, lbx=qp.lbw, ubx=qp.ubw)
    stats = qp.conic.stats()
    status = stats.get("return_status", "unknown")
    if qp.plugin == "daqp":
        status = DAQP_STATUS.get(int(status), str(status))
    if stats.get("success", False):
        status = f"{status}, but the solution fails the optimality check"
    return f"{qp.plugin}: {status}", int(stats.get("iter_count", -1))


def solve_failure(mpc, mode: str, pv: np.ndarray, viol: float, s, a, phi, index) -> Exception:
    """The :class:`MPCSolveError` of a solution that failed :func:`check_solution`."""
    status, iters = _status(_qp(mpc, mode), pv)
    where = f" (batch index {index})" if index is not None else ""
    action = f", action a={a}" if a is not None else ""
    return mpc.solve_error(
        f"MPC {mode} QP solve failed with status {status!r}{where}; optimality-check violation "
        f"{viol:.3g} (tolerance {KKT_TOL:g}); state s={s}{action}",
        status,
        s,
        a,
        phi,
        iters,
        index,
    )


# ---------------------------------------------------------------------------------------------
# solves
# ---------------------------------------------------------------------------------------------
def _qp(mpc: Any, mode: str) -> QuadraticProgram:
    """The :class:`QuadraticProgram` that :meth:`lgutils.mpc.MPC.problem` built for ``mode``."""
    return mpc.problem(mode).cache["qp"]


def _degenerate(qp: QuadraticProgram, P: np.ndarray) -> dict[str, np.ndarray]:
    """The ``"sens"`` parts where the KKT matrix at the active set is singular: ``K`` and ``R``
    from the ``"kkt"`` call, ``d u_0*/dP`` as the least-squares solution (numpy)."""
    parts = _call(qp, "kkt", P)
    rep = parts["rep"] > 0.5
    keep = (~rep).astype(float)
    n, nu = rep.shape[1], qp.idx_u0.size
    E = np.zeros((n, nu))
    E[qp.idx_u0, np.arange(nu)] = 1.0
    du = np.full((P.shape[0], qp.n_p, nu), np.nan)
    for i in np.flatnonzero(np.isfinite(parts["KT"]).all(axis=(1, 2))):
        Ka = parts["KT"][i] * np.outer(keep[i], keep[i]) + np.diag(rep[i].astype(float))
        y = np.linalg.lstsq(Ka, E, rcond=None)[0]
        du[i] = -(parts["RT"][i] * keep[i]) @ y
    parts["du"] = du
    return parts


def solve_many(mpc: Any, mode: str, P: np.ndarray, kind: str = "solve") -> tuple:
    """Solve at the parameter vectors ``P`` (N, n_p) in one call (a CasADi map for N > 1).

    Parameters
    ----------
    mpc : lgutils.mpc.MPC
    mode : {"policy", "q"}
    P : numpy.ndarray, shape (N, n_p)
        Parameter vectors ``[s, (a), (u_prev), phi]``; the fixed data are not checked here.
    kind : {"solve", "grad", "sens"}
        What to evaluate besides the solution: also the Lagrangian's parameter gradient
        ``"grad"``, also ``d u_0*/dP`` as ``"du"`` of shape (N, n_p, nu) (``"sens"``).

    Returns
    -------
    parts : dict of str to numpy.ndarray
        ``w``, ``lam_x``, ``lam_g``, ``g``, ``f``, ``viol`` (and ``grad``, ``du``), each with a
        leading axis of size N.
    violation : numpy.ndarray, shape (N,)
        :func:`check_solution`.
    seconds : float
        Wall-clock time of the call.
    """
    qp = _qp(mpc, mode)
    t0 = time.perf_counter()
    parts = _call(qp, kind, P)
    if kind == "sens" and not np.all(np.isfinite(parts["du"])):
        parts = _degenerate(qp, P)
    elapsed = time.perf_counter() - t0
    return parts, check_solution(parts), elapsed


def _one(mpc, mode: str, kind: str, s, a, u_prev, phi, index=None) -> tuple:
    """Check the data, solve once, check the solution: ``(MPCResult, parts, P)``."""
    pv = mpc.parameter_vector(mode, s, a, u_prev, phi)
    mpc.check_fixed_data(mode, s, a, pv, phi, index)
    parts, viol, elapsed = solve_many(mpc, mode, pv[None], kind)
    if not viol[0] <= KKT_TOL:
        raise solve_failure(mpc, mode, pv, float(viol[0]), s, a, phi, index)
    w = parts["w"][0]
    u_pred, x_pred = mpc.plan(mode, w, s, a)
    res = MPCResult(
        action=u_pred[0].copy(),
        value=float(parts["f"][0, 0]),
        x_pred=x_pred,
        u_pred=u_pred,
        slack=w[mpc.problem(mode).idx_slack],
        status=SUCCESS,
        iterations=-1,
        solve_time=elapsed,
        mode=mode,
    )
    mpc.last_result = res
    return res, parts, pv


def solve(mpc: Any, mode: str, s, a, u_prev, phi: np.ndarray, index=None) -> tuple:
    """One QP solve with checked inputs; returns ``(MPCResult, sol, P)``.

    ``sol`` holds what IPOPT's output would (``x``, ``f``, ``g``, ``lam_x``, ``lam_g``), ``P``
    is the parameter vector. The QP solver starts each solve from scratch: warm starts do not
    apply (an active-set solver needs no initial guess) and ``iterations`` is -1 (the composed
    call does not report them).

    Raises
    ------
    MPCSolveError
        Infeasible fixed data, or a solution that fails :func:`check_solution` (the status is
        the QP solver's own, e.g. ``"daqp: infeasible"``).
    """
    res, parts, pv = _one(mpc, mode, "solve", s, a, u_prev, phi, index)
    names = (("x", "w"), ("f", "f"), ("g", "g"), ("lam_x", "lam_x"), ("lam_g", "lam_g"))
    return res, {k: parts[v][0] for k, v in names}, pv


# ---------------------------------------------------------------------------------------------
# sensitivities
# ---------------------------------------------------------------------------------------------
def _split(mpc: Any, mode: str, vec: np.ndarray) -> dict[str, np.ndarray]:
    """A derivative along ``P = [s, (a), (u_prev), phi]`` (last axis) split into its parts."""
    out, i = {}, 0
    for name, n, used in (
        ("s", mpc.nx, True),
        ("a", mpc.nu, mode == "q"),
        ("u_prev", mpc.nu, mpc.use_u_prev),
        ("phi", mpc.n_phi, True),
    ):
        if used:
            out[name] = vec[..., i : i + n]
            i += n
    return out


def policy_sensitivity(
    mpc: Any, s: Any, phi: Any = None, *, u_prev: Any = None
) -> PolicySensitivity:
    """:func:`lgutils.mpc.sensitivity.policy_sensitivity` for ``method="qp"``: one call gives
    the solution, ``d u_0*/dP`` (the KKT system at the active set, solved in the call) and
    ``dV/dP`` (the Lagrangian's parameter gradient)."""
    s, _, u_prev, phiv = mpc.check_inputs(s, None, u_prev, phi, "policy")
    res, parts, _ = _one(mpc, "policy", "sens", s, None, u_prev, phiv)
    J = _split(mpc, "policy", parts["du"][0].T)
    g = _split(mpc, "policy", parts["grad"][0])
    return PolicySensitivity(
        result=res,
        d_action_d_phi=J["phi"],
        d_action_d_state=J["s"],
        d_value_d_phi=g["phi"],
        d_value_d_state=g["s"],
        d_action_d_u_prev=J.get("u_prev"),
        phi_slices=dict(mpc.phi_slices),
    )


def q_sensitivity(mpc: Any, s: Any, a: Any, phi: Any = None, *, u_prev: Any = None) -> QSensitivity:
    """:func:`lgutils.mpc.sensitivity.q_sensitivity` for ``method="qp"``: the Lagrangian's
    parameter gradient at the QP's solution."""
    s, a, u_prev, phiv = mpc.check_inputs(s, a, u_prev, phi, "q")
    res, parts, _ = _one(mpc, "q", "grad", s, a, u_prev, phiv)
    g = _split(mpc, "q", parts["grad"][0])
    return QSensitivity(
        result=res,
        d_q_d_phi=g["phi"],
        d_q_d_state=g["s"],
        d_q_d_action=g["a"],
        d_q_d_u_prev=g.get("u_prev"),
        phi_slices=dict(mpc.phi_slices),
    )


def sensitivity_batch(mpc: Any, S: np.ndarray, phiv: np.ndarray, U_prev) -> dict[str, np.ndarray]:
    """:func:`lgutils.mpc.batch.sensitivity_batch` for ``method="qp"``: one mapped call for all
    states. Inputs checked by the caller; raises :class:`MPCSolveError` at the first state
    whose data or solution fail (with its batch index)."""
    N = S.shape[0]
    Up = [None] * N if U_prev is None else U_prev
    P = np.stack([mpc.parameter_vector("policy", S[i], None, Up[i], phiv) for i in range(N)])
    for i in range(N):
        mpc.check_fixed_data("policy", S[i], None, P[i], phiv, i)
    parts, viol, _ = solve_many(mpc, "policy", P, "sens")
    bad = np.flatnonzero(~(viol <= KKT_TOL))
    if bad.size:
        i = int(bad[0])
        raise solve_failure(mpc, "policy", P[i], float(viol[i]), S[i], None, phiv, i)
    J = _split(mpc, "policy", np.swapaxes(parts["du"], 1, 2))
    g = _split(mpc, "policy", parts["grad"])
    out = {
        "actions": parts["w"][:, _qp(mpc, "policy").idx_u0],
        "values": parts["f"][:, 0],
        "d_action_d_phi": J["phi"],
        "d_action_d_state": J["s"],
        "d_value_d_phi": g["phi"],
        "d_value_d_state": g["s"],
    }
    if mpc.use_u_prev:
        out["d_action_d_u_prev"] = J["u_prev"]
    return out
