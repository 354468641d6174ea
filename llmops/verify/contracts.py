"""The contract registry: each contract is a function of the plan that yields findings.

A finding names both ends of a connection and what is missing between them, the way kube-linter's
dangling-service check or Reachability Analyzer's blocking component do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from llmops.verify.model import PlanView


@dataclass(frozen=True)
class Finding:
    contract: str  # the contract's id, e.g. selector-service
    resource: str  # the consumer end: a resource's logical name
    peer: str  # the other end (a resource, a metric, an API), or what is missing
    message: str  # what does not meet, as "X must ..."
    fix: str = ""  # what to change

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Contract:
    id: str
    area: str  # selectors, metrics, network, permissions, ordering, containers, tls
    description: str  # "Checks whether ..."
    check: Callable[[PlanView], Iterator[Finding]]


CONTRACTS: list[Contract] = []


def contract(id: str, area: str, description: str):
    """Register `check(plan) -> Iterator[Finding]` as a contract."""
    if not description.startswith("Checks whether "):
        raise ValueError(f"{id}: description must start 'Checks whether '")

    def register(check: Callable[[PlanView], Iterator[Finding]]):
        if any(c.id == id for c in CONTRACTS):
            raise ValueError(f"{id}: duplicate contract id")
        CONTRACTS.append(Contract(id, area, description, check))
        return check

    return register
