"""Safe arithmetic expressions for response models — never Python ``eval``.

An expression is parsed with :mod:`ast` and checked against a whitelist: numbers, the names it
was allowed (process parameters) and ``pi``/``e``, ``+ - * / // % **``, comparisons, ``and/or/not``,
``a if cond else b`` and calls of the functions in :data:`FUNCTIONS`. Attribute access, subscripts,
lambdas, comprehensions, strings, keyword arguments and any other name are rejected at load time
with a message naming the offending piece. Evaluation walks the checked tree with numpy functions,
so the same expression evaluates on scalars and on whole parameter grids.
"""
from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import numpy.typing as npt

from twins.errors import InputError

#: What an expression evaluates to: numpy scalars on scalar values (a comparison gives a boolean),
#: arrays on parameter grids.
Value = float | np.bool_ | npt.NDArray[np.float64] | npt.NDArray[np.bool_]

FUNCTIONS: dict[str, Callable[..., Value]] = {
    "exp": np.exp, "log": np.log, "log10": np.log10, "sqrt": np.sqrt, "abs": np.abs,
    "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "floor": np.floor, "ceil": np.ceil,
    "min": np.minimum, "max": np.maximum, "clip": np.clip, "pow": np.power,
    "logistic": lambda x: 1.0 / (1.0 + np.exp(-x)),
}
_ARITY = {"min": 2, "max": 2, "clip": 3, "pow": 2}
CONSTANTS = {"pi": math.pi, "e": math.e}

_BINOPS: dict[type[ast.operator], Callable[[Value, Value], Value]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow}
_UNARY: dict[type[ast.unaryop], Callable[..., Value]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: np.logical_not}
_CMPS: dict[type[ast.cmpop], Callable[[Value, Value], Value]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne}


class ExpressionError(InputError, ValueError):
    """An expression that is malformed or uses something outside the whitelist. Also a
    ``ValueError``, so a pydantic validator that meets one reports it as a validation error."""


class Expression:
    """A checked expression over a fixed set of variable names.

    >>> Expression("1.2 - 0.01 * speed", ["speed"])({"speed": 20.0})
    1.0
    """

    __slots__ = ("source", "names", "_tree")

    def __init__(self, source: str, names: Iterable[str]):
        self.source = str(source)
        self.names = frozenset(names)
        try:
            tree = ast.parse(self.source.strip(), mode="eval")
        except SyntaxError as err:
            raise ExpressionError(f"not a valid expression: {self.source!r} ({err.msg})") from None
        self._check(tree.body)
        self._tree = tree.body

    def _check(self, node: ast.AST) -> None:
        """Raise :class:`ExpressionError` for the first piece of ``node`` (depth first, left to
        right) outside the whitelist."""
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ExpressionError(f"only numbers are allowed as literals, found {node.value!r}")
        elif isinstance(node, ast.Name):
            if node.id not in self.names and node.id not in CONSTANTS:
                allowed = ", ".join(sorted(self.names)) or "none"
                raise ExpressionError(f"unknown name {node.id!r} (parameters: {allowed})")
        elif isinstance(node, ast.Call):
            for n in _call_arguments(node):
                self._check(n)
        elif isinstance(node, ast.Attribute):
            raise ExpressionError(f"attribute access {ast.unparse(node)!r} is not allowed")
        else:
            operands = _operands(node)
            if operands is None:
                raise ExpressionError(f"{type(node).__name__} {ast.unparse(node)!r} is not allowed in an expression")
            for n in operands:
                self._check(n)

    def __call__(self, values: Mapping[str, float | npt.NDArray[np.float64]]) -> Value:
        """Evaluate with ``values`` (scalars or equally shaped arrays) for the variable names."""
        # numpy scalars, so 1/0 is inf (caught by range checks), not a Python exception
        env = {k: np.asarray(v, dtype=float) if np.ndim(v) else np.float64(v) for k, v in values.items()}
        with np.errstate(all="ignore"):
            return self._eval(self._tree, env)

    def _eval(self, node: ast.expr, env: Mapping[str, Value]) -> Value:
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int | float)  # _check let numbers through only
            return np.float64(node.value)
        if isinstance(node, ast.Name):
            return env[node.id] if node.id in self.names else CONSTANTS[node.id]
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](self._eval(node.left, env), self._eval(node.right, env))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, env))
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, env)
            result: Value = True
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comp, env)
                result = np.logical_and(result, _CMPS[type(op)](left, right))
                left = right
            return result
        if isinstance(node, ast.BoolOp):
            vals = [self._eval(v, env) for v in node.values]
            fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = vals[0]
            for v in vals[1:]:
                out = fn(out, v)
            return out
        if isinstance(node, ast.IfExp):
            return np.where(self._eval(node.test, env), self._eval(node.body, env), self._eval(node.orelse, env))
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)  # _check let calls of functions by name through only
            return FUNCTIONS[node.func.id](*(self._eval(a, env) for a in node.args))
        raise AssertionError("unchecked node")  # unreachable: _check rejected it

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _call_arguments(node: ast.Call) -> list[ast.expr]:
    """The arguments of an allowed call: a function of :data:`FUNCTIONS` by name, with its arity
    and no keywords; :class:`ExpressionError` otherwise."""
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        what = ast.unparse(node.func)
        raise ExpressionError(f"call of {what!r} is not allowed (functions: {', '.join(sorted(FUNCTIONS))})")
    if node.keywords:
        raise ExpressionError(f"keyword arguments are not allowed in {node.func.id}()")
    want = _ARITY.get(node.func.id, 1)
    if len(node.args) != want:
        raise ExpressionError(f"{node.func.id}() takes {want} argument(s), got {len(node.args)}")
    return node.args


def _operands(node: ast.AST) -> list[ast.expr] | None:
    """The operands of an allowed operator node (arithmetic, comparison, boolean, conditional), in
    evaluation order; None for any other node."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return [node.operand]
    if isinstance(node, ast.Compare) and all(type(op) in _CMPS for op in node.ops):
        return [node.left, *node.comparators]
    if isinstance(node, ast.BoolOp):
        return node.values
    if isinstance(node, ast.IfExp):
        return [node.test, node.body, node.orelse]
    return None
