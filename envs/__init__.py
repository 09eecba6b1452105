"""Gymnasium environments of twinopt, registered here (one place, as in gymnasium/envs/__init__.py)
so users write ``gymnasium.make("twinopt/Dispatch-v0")`` after ``import envs``."""
from __future__ import annotations

from typing import Any

from twins.extras import requires

with requires("rl", "the envs package (twinopt's gymnasium environments)"):
    import gymnasium as gym
    from gymnasium.envs.registration import register


def make_dispatch_env(**kwargs: Any) -> gym.Env:
    """Entry point of ``twinopt/Dispatch-v0``: the dynamic twin env
    (:class:`envs.dynamic_dispatch.DynamicDispatchEnv`) when ``scenario`` is given, else the static
    job-shop env (:class:`envs.dispatch.DispatchEnv`)."""
    if kwargs.get("scenario") is not None:
        from envs.dynamic_dispatch import DynamicDispatchEnv

        return DynamicDispatchEnv(**kwargs)
    from envs.dispatch import DispatchEnv

    kwargs.pop("scenario", None)
    return DispatchEnv(**kwargs)


register(id="twinopt/Dispatch-v0", entry_point="envs:make_dispatch_env")
register(id="twinopt/DynamicDispatch-v0", entry_point="envs.dynamic_dispatch:DynamicDispatchEnv")
register(id="twinopt/Parameter-v0", entry_point="envs.parameter:ParameterEnv")
register(id="twinopt/Energy-v0", entry_point="envs.energy:EnergyEnv")
