"""Registration of the book's environments with gymnasium (``gymnasium.make("lgutils/...")``)."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

#: environment id -> entry point; each module adds its line when it lands.
ENVIRONMENTS: dict[str, str] = {
    "lgutils/LinearQuadratic-v0": "lgutils.core.envs:LinearQuadraticEnv",
    "lgutils/CSTR-v0": "lgutils.value_function_mpc.env:CSTREnv",
}

for _env_id, _entry_point in ENVIRONMENTS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point)
