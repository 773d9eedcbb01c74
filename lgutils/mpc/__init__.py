"""The CasADi MPC of eq. (13) that every MPC chapter builds on.

- :mod:`~lgutils.mpc.options` -- what an MPC is made of: :class:`Model`, :class:`Cost`,
  :class:`Constraints`, :class:`Bounds`, :class:`SolverOptions`, :class:`Params`;
- :mod:`~lgutils.mpc.transcription` -- eq. (13) as a nonlinear program (multiple shooting);
- :mod:`~lgutils.mpc.controller` -- :class:`MPC`: policy, Q-value, value, warm starts;
- :mod:`~lgutils.mpc.sensitivity` -- derivatives of the solution (implicit differentiation);
- :mod:`~lgutils.mpc.qp` -- the same when the problem is a QP (``SolverOptions(method="qp")``):
  a QP solver and the KKT system at the solution, fast enough to train through;
- :mod:`~lgutils.mpc.batch` -- many states at once;
- :mod:`~lgutils.mpc.closed_loop` -- the receding-horizon loop on a plant;
- :mod:`~lgutils.mpc.scenario` -- the robust scenario-tree MPC;
- :mod:`~lgutils.mpc.discretisation` -- RK4 and Radau collocation;
- :mod:`~lgutils.mpc.linear_quadratic` -- the fully parametrised linear-quadratic MPC;
- :mod:`~lgutils.mpc.results` -- results and the error of a failed solve.

``from lgutils.mpc import MPC, Model, Cost, ...`` imports the names a chapter needs.
"""

from lgutils.mpc.closed_loop import ClosedLoop, closed_loop
from lgutils.mpc.controller import MPC, RawSolution
from lgutils.mpc.discretisation import collocation_coefficients, discretize
from lgutils.mpc.linear_quadratic import linear_quadratic_mpc
from lgutils.mpc.options import (
    PRIMAL_DUAL_WARM_START,
    QPSOL_DEFAULTS,
    Bounds,
    Constraints,
    Cost,
    Model,
    Params,
    SolverOptions,
)
from lgutils.mpc.results import (
    SUCCESS_STATUSES,
    BatchResult,
    MPCResult,
    MPCSolveError,
    PolicySensitivity,
    QSensitivity,
    UnknownParameterError,
)
from lgutils.mpc.scenario import (
    Scaling,
    ScenarioMPC,
    ScenarioResult,
    ScenarioTree,
    SoftBounds,
    scenario_grid,
)

__all__ = [
    "MPC",
    "Model",
    "Cost",
    "Constraints",
    "Bounds",
    "SolverOptions",
    "Params",
    "PRIMAL_DUAL_WARM_START",
    "QPSOL_DEFAULTS",
    "MPCResult",
    "BatchResult",
    "PolicySensitivity",
    "QSensitivity",
    "MPCSolveError",
    "UnknownParameterError",
    "SUCCESS_STATUSES",
    "RawSolution",
    "ClosedLoop",
    "closed_loop",
    "discretize",
    "collocation_coefficients",
    "linear_quadratic_mpc",
    "ScenarioMPC",
    "ScenarioResult",
    "ScenarioTree",
    "SoftBounds",
    "Scaling",
    "scenario_grid",
]
