"""Gymnasium environments of twinopt, registered here (one place, as in gymnasium/envs/__init__.py)
so users write ``gymnasium.make("twinopt/Dispatch-v0")`` after ``import envs``."""
from twins.extras import requires

with requires("rl", "the envs package (twinopt's gymnasium environments)"):
    from gymnasium.envs.registration import register

register(id="twinopt/Dispatch-v0", entry_point="envs.dispatch:DispatchEnv")
register(id="twinopt/Parameter-v0", entry_point="envs.parameter:ParameterEnv")
register(id="twinopt/Energy-v0", entry_point="envs.energy:EnergyEnv")
