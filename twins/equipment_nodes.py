"""Where the equipment serves the gateway's handshake and dispatch lists: part of ``equipment:``.

The defaults are the virtual plant's names (``twinopt plant``, docs/plant.md); a PLC or MES that
serves them elsewhere declares its own in the scenario::

    equipment:
      handshake:
        staging: "ns=3;s=Recipe.Staged.{tag}"     # {tag}: the tag's name, station.parameter
        apply_object: "ns=3;s=Recipe"
        apply_method: "ns=3;s=Recipe.Apply"
        heartbeat: "ns=3;s=Gateway.Heartbeat"
        push_active: "ns=3;s=Gateway.PushActive"
      dispatch:
        node: "ns=3;s=MES.{station}.Queue"           # {station}: the station's name
        remaining: "ns=3;s=MES.{station}.Remaining"
        approval: true

Every value is an OPC UA NodeId in string form (``ns=<index>;s=<name>``, or ``i=``, ``g=``,
``b=`` identifiers) after its placeholder is filled in; anything else is refused when the
scenario is read. The twin never reads these names, so they are not part of the fingerprint.
"""
from __future__ import annotations

import re
import string

from pydantic import Field, field_validator

from twins.specmodel import SpecModel

_NODE_ID = re.compile(r"^(ns=\d+;)?[isgb]=\S.*$")


def _node_pattern(value: str, placeholder: str | None) -> str:
    """``value`` when it is a NodeId string with exactly the allowed ``placeholder`` (or none)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
    except ValueError as err:
        raise ValueError(f"{value!r}: unbalanced braces ({err})") from None
    allowed = [] if placeholder is None else [placeholder]
    if fields != allowed:
        need = f"exactly one {{{placeholder}}}" if placeholder else "no {placeholder}"
        raise ValueError(f"{value!r} must contain {need}, got {', '.join('{' + f + '}' for f in fields) or 'none'}")
    filled = value.format(**({placeholder: "x"} if placeholder else {}))
    if not _NODE_ID.match(filled):
        raise ValueError(f"{value!r} is not an OPC UA NodeId (e.g. ns=2;s=gateway.heartbeat)")
    return value


class Handshake(SpecModel):
    """The nodes of the push handshake: staged targets, the method that applies them, and the
    watchdog's heartbeat and push-active flag (docs/gateway.md, "Push")."""

    staging: str = Field(default="ns=2;s=staging.{tag}",
                         description="where a tag's target is staged; {tag} is the tag's name (station.parameter)")
    apply_object: str = Field(default="ns=2;s=staging", description="the object the apply method is called on")
    apply_method: str = Field(default="ns=2;s=staging.ApplyStaged",
                              description="method that applies every staged target at once, or none")
    heartbeat: str = Field(default="ns=2;s=gateway.heartbeat",
                           description="UInt32 the gateway changes while pushing (the watchdog's heartbeat)")
    push_active: str = Field(default="ns=2;s=gateway.push_active",
                             description="Boolean the gateway sets while a push is in progress")

    @field_validator("staging")
    @classmethod
    def _staging(cls, value: str) -> str:
        return _node_pattern(value, "tag")

    @field_validator("apply_object", "apply_method", "heartbeat", "push_active")
    @classmethod
    def _fixed(cls, value: str) -> str:
        return _node_pattern(value, None)

    def staging_node(self, tag: str) -> str:
        """Where ``tag``'s target is staged."""
        return self.staging.format(tag=tag)


class DispatchNodes(SpecModel):
    """Where each station's dispatch list is published (docs/gateway.md, "Publishing a schedule"):
    ``node`` a writable String array of product names in processing order, ``remaining`` the
    read-only part of it not dispatched yet; ``approval``: every publish needs a sign-off."""

    node: str = Field(default="ns=2;s={station}.dispatch_list",
                      description="writable String array: the station's dispatch list; {station} is its name")
    remaining: str = Field(default="ns=2;s={station}.dispatch_remaining",
                           description="read-only String array: the products of the list not dispatched yet")
    approval: bool = Field(default=False, description="every publish of dispatch lists needs an approver's sign-off")

    @field_validator("node", "remaining")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return _node_pattern(value, "station")

    def node_of(self, station: str) -> str:
        """The NodeId of ``station``'s dispatch list."""
        return self.node.format(station=station)

    def remaining_of(self, station: str) -> str:
        return self.remaining.format(station=station)


__all__ = ["DispatchNodes", "Handshake"]
