"""Pyomo MILP models users can print, inspect and extend: ``build_model(instance)`` returns a
``ConcreteModel`` with named Sets, Params, Vars and Constraints; :func:`solve` solves any Pyomo
model with HiGHS (default) or another installed solver and reports status, bound and gap.

>>> from optimizers.milp import jobshop, solve
>>> model = jobshop.build_model(instance)          # doctest: +SKIP
>>> result = solve(model, time_limit=60)           # doctest: +SKIP
>>> schedule = jobshop.extract_schedule(instance, model, result)  # doctest: +SKIP
"""
from .solve import SolveResult, require_solution, solve

__all__ = ["SolveResult", "require_solution", "solve"]
