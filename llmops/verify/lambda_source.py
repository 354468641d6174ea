"""What a Lambda's code calls, read from its source with `ast`: every boto3 client it creates and
every API operation it invokes on one (paginators included), with the environment variable that
names the resource when the code takes it from there.

A client is recognised when it is made by `boto3.client("svc")` and reached through a variable or
through a function returning it (the handlers cache clients in small `@cache` functions).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name

from llmops import PROJECT_DIR

# IAM action prefixes that differ from the boto3 client name.
IAM_PREFIX = {"stepfunctions": "states", "elbv2": "elasticloadbalancing", "es": "es"}
# VPC interface-endpoint service names that differ from the boto3 client name.
ENDPOINT_SERVICE = {"cloudwatch": "monitoring", "stepfunctions": "states", "elbv2": "elasticloadbalancing"}
GATEWAY_ENDPOINT_SERVICES = {"s3", "dynamodb"}


@dataclass(frozen=True)
class Call:
    service: str  # boto3 client name
    operation: str  # API operation, e.g. GetSecretValue
    file: str
    line: int
    kwargs: tuple[tuple[str, str], ...] = ()  # keyword -> "env:NAME" or a literal/constant value

    @property
    def action(self) -> str:
        return f"{IAM_PREFIX.get(self.service, self.service)}:{self.operation}"

    def env(self, keyword: str) -> str | None:
        """The environment variable a keyword argument comes from, if the code reads it there."""
        value = dict(self.kwargs).get(keyword)
        return value[4:] if value and value.startswith("env:") else None

    def literal(self, keyword: str) -> str | None:
        value = dict(self.kwargs).get(keyword)
        return value[4:] if value and value.startswith("lit:") else None


@dataclass
class LambdaSource:
    folder: Path
    calls: list[Call] = field(default_factory=list)

    @property
    def services(self) -> set[str]:
        return {c.service for c in self.calls}


@cache
def _operations(service: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


def source_folder(function: dict[str, Any]) -> Path | None:
    """The lambdas/<folder> a function's code archive is built from."""
    archive = ((function.get("inputs") or {}).get("code") or {}).get("archive") or {}
    for key, asset in archive.items():
        path = ((asset or {}).get("asset") or {}).get("path") if isinstance(asset, dict) else None
        if path and key.endswith("handler.py"):
            folder = (PROJECT_DIR / path).parent
            return folder if folder.is_dir() else None
    return None


def _constant(node: ast.AST, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _env_name(node: ast.AST) -> str | None:
    """NAME for os.environ["NAME"], os.environ.get("NAME", ...) and os.getenv("NAME")."""
    if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
        return _constant(node.slice, {})
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv") and node.args:
        return _constant(node.args[0], {})
    return None


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: Path, tree: ast.Module):
        self.path = path
        self.calls: list[Call] = []
        self.constants = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Constant)
            and isinstance(n.value.value, str)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        self.factories: dict[str, str] = {}  # function name -> client service
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and (svc := self._boto3_client(ret.value)):
                        self.factories[node.name] = svc
        self.scopes: list[dict[str, Any]] = [{}]

    def _boto3_client(self, node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Call) and ast.unparse(node.func) in (
            "boto3.client",
            "boto3.session.Session().client",
        ):
            return _constant(node.args[0], self.constants) if node.args else None
        return None

    def _client_of(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in self.factories:
            return self.factories[node.func.id]
        if svc := self._boto3_client(node):
            return svc
        if isinstance(node, ast.Name):
            bound = self.scopes[-1].get(node.id) or self.scopes[0].get(node.id)
            return bound[1] if isinstance(bound, tuple) and bound[0] == "client" else None
        return None

    def _paginator_of(self, node: ast.AST) -> tuple[str, str] | None:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get_paginator"
        ):
            svc = self._client_of(node.func.value)
            op = _constant(node.args[0], self.constants) if node.args else None
            return (svc, op) if svc and op else None
        if isinstance(node, ast.Name):
            bound = self.scopes[-1].get(node.id)
            return bound[1] if isinstance(bound, tuple) and bound[0] == "paginator" else None
        return None

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.scopes.append({})
        self.generic_visit(node)
        self.scopes.pop()

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if not isinstance(target, ast.Name):
                continue
            if svc := self._client_of(node.value):
                self.scopes[-1][target.id] = ("client", svc)
            elif paginator := self._paginator_of(node.value):
                self.scopes[-1][target.id] = ("paginator", paginator)
            elif name := _env_name(node.value):
                self.scopes[-1][target.id] = ("env", name)
        self.generic_visit(node)

    def _kwargs(self, node: ast.Call) -> tuple[tuple[str, str], ...]:
        out = []
        for kw in node.keywords:
            if kw.arg is None:
                continue
            if name := _env_name(kw.value):
                out.append((kw.arg, f"env:{name}"))
            elif (
                isinstance(kw.value, ast.Name)
                and isinstance(self.scopes[-1].get(kw.value.id), tuple)
                and self.scopes[-1][kw.value.id][0] == "env"
            ):
                out.append((kw.arg, f"env:{self.scopes[-1][kw.value.id][1]}"))
            elif (value := _constant(kw.value, self.constants)) is not None:
                out.append((kw.arg, f"lit:{value}"))
        return tuple(out)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr == "paginate" and (paginator := self._paginator_of(func.value)):
                svc, method = paginator
                self._record(svc, method, node)
            elif func.attr != "get_paginator" and (svc := self._client_of(func.value)):
                self._record(svc, func.attr, node)
        self.generic_visit(node)

    def _record(self, svc: str, method: str, node: ast.Call) -> None:
        operation = _operations(svc).get(method)
        if operation:  # `meta`, `exceptions` and other client attributes are not API calls
            self.calls.append(Call(svc, operation, self.path.name, node.lineno, self._kwargs(node)))


@cache
def scan(folder: Path) -> LambdaSource:
    """Every AWS API call in the folder's Python files."""
    source = LambdaSource(folder)
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        scanner = _Scanner(path, tree)
        scanner.visit(tree)
        source.calls += scanner.calls
    return source
