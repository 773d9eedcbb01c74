"""The CasADi MPC of eq. (13) that every MPC chapter builds on."""

from lgutils.mpc.controller import *  # noqa: F401,F403
from lgutils.mpc.controller import __all__  # noqa: F401
