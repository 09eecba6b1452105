"""Data shipped with twinopt, not code: the example scenarios (``<name>.yaml``) and the public
scheduling instances (``instances/{jssp,pfsp,fjsp}``). A package only so that wheels carry it as
package data; :mod:`twins.shipped` finds the files through :mod:`importlib.resources`."""
