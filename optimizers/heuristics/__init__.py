"""Heuristics: NEH and iterated greedy for the permutation flow shop (``neh``,
``iterated_greedy``), dispatching rules for job shops (``rules``)."""
