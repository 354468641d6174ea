"""What a Lambda's code calls, read from its source with `ast`: every boto3 client it creates and
every API operation it invokes on one (paginators included), with the environment variable that
names the resource when the code takes it from there.

A client is recognised when it is made by `boto3.client("svc")` and reached through a variable or
through a function returning it (the handlers cache clients in small `@cache` functions).

Where an argument's value comes from is followed through the module (`_Flow`): assignments,
function parameters (bound at every call site of the module, across functions and lambdas), return
values, subscripts, `.get` and loops. A value can come from an environment variable, a string
constant, or a JSON document the code loads from a file shipped beside it (`json.loads(path.read_text())`
with the file's name a constant, e.g. the team reconciler's desired.json): then the origin is the file
and the path of keys inside it (`teams.*.key.secret_id`), which `permissions.py` looks up in the
function's code archive.
"""

from __future__ import annotations

import ast
import re
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
class Document:
    """A value the code reads from a JSON document shipped in its archive."""

    file: str  # the file's name, e.g. desired.json
    path: tuple[str, ...]  # keys from the document's root; "*" for every element of a list
    overrides: tuple[str, ...] = ()  # environment variables the code may read the path from instead

    def __str__(self) -> str:
        return f"{self.file}:{'.'.join(self.path)}"


@dataclass(frozen=True)
class Call:
    service: str  # boto3 client name
    operation: str  # API operation, e.g. GetSecretValue
    file: str
    line: int
    # keyword -> "env:NAME", "lit:VALUE", "pat:PATTERN" (an f-string, `*` where it formats a value it
    # cannot name) or "doc:FILE:PATH", one entry per place the value may come from
    kwargs: tuple[tuple[str, str], ...] = ()
    docs: tuple[tuple[str, Document], ...] = ()  # keyword -> document values (the doc: entries)

    @property
    def action(self) -> str:
        return f"{IAM_PREFIX.get(self.service, self.service)}:{self.operation}"

    def origins(self, keyword: str) -> list[str]:
        return [v for k, v in self.kwargs if k == keyword]

    def _only(self, keyword: str, kind: str) -> str | None:
        found = self.origins(keyword)
        return found[0][len(kind) :] if len(found) == 1 and found[0].startswith(kind) else None

    def env(self, keyword: str) -> str | None:
        """The environment variable a keyword argument comes from, if the code reads it there only."""
        return self._only(keyword, "env:")

    def literal(self, keyword: str) -> str | None:
        return self._only(keyword, "lit:")

    def pattern(self, keyword: str) -> str | None:
        """The value's shape when the code builds it with an f-string (`prompts/*/evals/*`)."""
        return self._only(keyword, "pat:")

    def documents(self, keyword: str) -> list[Document]:
        """The document values a keyword argument comes from (empty when it comes from elsewhere)."""
        return [d for k, d in self.docs if k == keyword]


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


DOCUMENT_LOADERS = {"json.loads", "json.load", "yaml.safe_load", "yaml.load"}
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")
# ("env", NAME) | ("lit", VALUE) | ("pat", PATTERN) | ("doc", Document) | ("param", FUNC, NAME, PATH)
Origin = tuple


def _own_nodes(node: ast.AST) -> list[ast.AST]:
    """The nodes of a function (or module) body, without those of the functions and classes it
    defines (lambdas included: they read the enclosing function's names)."""
    found, todo = [], list(ast.iter_child_nodes(node))
    while todo:
        child = todo.pop()
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        found.append(child)
        todo.extend(ast.iter_child_nodes(child))
    return found


def _index(origin: Origin, key: str) -> Origin | None:
    if origin[0] == "doc":
        d = origin[1]
        return ("doc", Document(d.file, (*d.path, key), d.overrides))
    if origin[0] == "param":
        return ("param", origin[1], origin[2], (*origin[3], key))
    return None  # an environment variable or a constant has no keys


class _Flow:
    """Where the values of a module come from (module-wide, flow-insensitive: a name's origins are
    those of every value assigned to it in its function)."""

    def __init__(self, tree: ast.Module):
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.top: dict[str, str] = {}  # module-level function name -> its qualified name
        self._collect(tree, "")
        self.params = {
            q: [a.arg for a in [*f.args.posonlyargs, *f.args.args, *f.args.kwonlyargs]]
            for q, f in self.functions.items()
        }
        self.envs: dict[str | None, dict[str, set[Origin]]] = {None: {}}
        for q in self.functions:
            self.envs[q] = {p: {("param", q, p, ())} for p in self.params[q]}
        self.returns: dict[str, set[Origin]] = {q: set() for q in self.functions}
        self.bodies: dict[str | None, list[ast.AST]] = {None: _own_nodes(tree)}
        self.bodies.update({q: _own_nodes(f) for q, f in self.functions.items()})
        for _ in range(8):  # until nothing changes (a few passes: calls feed returns feed calls)
            if not self._pass():
                break
        self.bindings: dict[tuple[str, str], set[Origin]] = {}
        for scope, nodes in self.bodies.items():
            for node in nodes:
                if isinstance(node, ast.Call) and (callee := self._callee(node)):
                    for param, arg in self._arguments(callee, node):
                        self.bindings.setdefault((callee, param), set()).update(self.eval(arg, scope))

    def _collect(self, node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions[prefix + child.name] = child
                if not prefix:
                    self.top[child.name] = child.name
                self._collect(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                self._collect(child, f"{prefix}{child.name}.")

    def _callee(self, call: ast.Call) -> str | None:
        return self.top.get(call.func.id) if isinstance(call.func, ast.Name) else None

    def _arguments(self, callee: str, call: ast.Call) -> list[tuple[str, ast.AST]]:
        params = self.params[callee]
        bound = [
            (params[i], a) for i, a in enumerate(call.args[: len(params)]) if not isinstance(a, ast.Starred)
        ]
        bound += [(k.arg, k.value) for k in call.keywords if k.arg in params]
        return bound

    # -- one pass over every scope --------------------------------------------------------------

    def _pass(self) -> bool:
        changed = False
        for scope, nodes in self.bodies.items():
            env = self.envs[scope]
            for node in nodes:
                for name, origins in self._bindings_of(node, scope):
                    known = env.setdefault(name, set())
                    if not origins <= known:
                        known |= origins
                        changed = True
                if scope is not None and isinstance(node, ast.Return) and node.value is not None:
                    origins = self.eval(node.value, scope)
                    if not origins <= self.returns[scope]:
                        self.returns[scope] |= origins
                        changed = True
        return changed

    def _bindings_of(self, node: ast.AST, scope: str | None) -> list[tuple[str, set[Origin]]]:
        if isinstance(node, ast.Assign):
            return [b for t in node.targets for b in self._assign(t, node.value, scope)]
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            return self._assign(node.target, node.value, scope)
        if isinstance(node, ast.NamedExpr):
            return self._assign(node.target, node.value, scope)
        if isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            return self._loop(node.target, node.iter, scope)
        return []

    def _assign(self, target: ast.AST, value: ast.AST, scope: str | None) -> list[tuple[str, set[Origin]]]:
        if isinstance(target, ast.Name):
            return [(target.id, self.eval(value, scope))]
        if isinstance(target, ast.Tuple | ast.List):
            if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
                return [
                    b for t, v in zip(target.elts, value.elts, strict=True) for b in self._assign(t, v, scope)
                ]
            if isinstance(value, ast.IfExp):
                return self._assign(target, value.body, scope) + self._assign(target, value.orelse, scope)
        return []

    def _loop(self, target: ast.AST, iterable: ast.AST, scope: str | None) -> list[tuple[str, set[Origin]]]:
        """`for x in xs`: x is every element of xs; enumerate() and .items() give (key, element)."""
        pairs = (
            isinstance(iterable, ast.Call)
            and iterable.args
            and (
                (isinstance(iterable.func, ast.Name) and iterable.func.id == "enumerate")
                or (isinstance(iterable.func, ast.Attribute) and iterable.func.attr == "items")
            )
        )
        if pairs and isinstance(iterable.func, ast.Attribute):
            iterable = iterable.func.value
        elif pairs:
            iterable = iterable.args[0]
        elements = {e for o in self.eval(iterable, scope) if (e := _index(o, "*"))}
        if pairs and isinstance(target, ast.Tuple) and len(target.elts) == 2:
            target = target.elts[1]
        return [(target.id, elements)] if isinstance(target, ast.Name) else []

    # -- values ---------------------------------------------------------------------------------

    def eval(self, node: ast.AST, scope: str | None) -> set[Origin]:
        """Origins of an expression in a scope (a function's qualified name, None for the module),
        parameters of the scope's function left as ("param", ...)."""
        if (name := _env_name(node)) is not None:
            return {("env", name)}
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {("lit", node.value)}
        if isinstance(node, ast.JoinedStr):
            return {("pat", self._pattern(node, scope))}
        if isinstance(node, ast.Name):  # the scope's own names, then enclosing functions', then the module's
            while scope is not None and not self.envs.get(scope, {}).get(node.id):
                scope = scope.rpartition(".")[0] or None
            return set(self.envs[scope].get(node.id) or ())
        if isinstance(node, ast.Subscript):
            key = node.slice.value if isinstance(node.slice, ast.Constant) else "*"
            return {i for o in self.eval(node.value, scope) if (i := _index(o, str(key)))}
        if isinstance(node, ast.BoolOp):
            return {o for v in node.values for o in self.eval(v, scope)}
        if isinstance(node, ast.IfExp):
            return self.eval(node.body, scope) | self.eval(node.orelse, scope)
        if isinstance(node, ast.NamedExpr | ast.Await):
            return self.eval(node.value, scope)
        if isinstance(node, ast.Call):
            return self._call(node, scope)
        return set()

    def _pattern(self, node: ast.JoinedStr, scope: str | None) -> str:
        """An f-string's shape: its constant parts, the one constant or pattern a formatted name
        holds, `*` for anything else."""
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
                continue
            known = {o[1] for o in self.eval(value.value, scope) if o[0] in ("lit", "pat")}
            parts.append(known.pop() if len(known) == 1 and value.format_spec is None else "*")
        return re.sub(r"\*+", "*", "".join(parts))

    def _call(self, node: ast.Call, scope: str | None) -> set[Origin]:
        func = node.func
        if ast.unparse(func) in DOCUMENT_LOADERS and node.args:
            file, overrides = self._document_file(node.args[0], scope)
            return {("doc", Document(file, (), overrides))} if file else set()
        if isinstance(func, ast.Attribute) and func.attr == "get" and node.args:
            key = node.args[0].value if isinstance(node.args[0], ast.Constant) else "*"
            found = {i for o in self.eval(func.value, scope) if (i := _index(o, str(key)))}
            return found | (self.eval(node.args[1], scope) if len(node.args) > 1 else set())
        if isinstance(func, ast.Name) and func.id == "str" and node.args:
            return self.eval(node.args[0], scope)
        callee = self._callee(node)
        if callee is None:
            return set()
        args = dict(self._arguments(callee, node))
        out = set()
        for origin in self.returns[callee]:
            if origin[0] == "param" and origin[1] == callee:
                if origin[2] in args:
                    for o in self.eval(args[origin[2]], scope):
                        for key in origin[3]:
                            o = _index(o, key) if o else None
                        if o:
                            out.add(o)
            else:
                out.add(origin)
        return out

    def _document_file(self, node: ast.AST, scope: str | None, depth: int = 0) -> tuple[str | None, tuple]:
        """The file a document is read from: a file-name constant in the expression, following the
        names it uses to their assignments; and the environment variables that may replace it."""
        files, overrides = [], []
        for sub in ast.walk(node):
            if (env := _env_name(sub)) is not None:
                overrides.append(env)
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                if sub.value.endswith(DOCUMENT_SUFFIXES):
                    files.append(sub.value.rsplit("/", 1)[-1])
            elif isinstance(sub, ast.Name) and depth < 4:
                for assigned in self._assigned(sub.id, scope):
                    file, more = self._document_file(assigned, scope, depth + 1)
                    files += [file] if file else []
                    overrides += more
        return (files[0] if files else None), tuple(dict.fromkeys(overrides))

    def _assigned(self, name: str, scope: str | None) -> list[ast.AST]:
        return [
            n.value
            for s in dict.fromkeys([scope, None])
            for n in self.bodies.get(s, [])
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)
        ]

    # -- parameters, through the call sites -----------------------------------------------------

    def resolve(self, origins: set[Origin], seen: frozenset = frozenset()) -> set[Origin]:
        """Origins with every parameter replaced by what its call sites pass (dropped when nothing
        in the module calls the function, e.g. the handler's event)."""
        out = set()
        for origin in origins:
            if origin[0] != "param":
                out.add(origin)
                continue
            key = (origin[1], origin[2])
            if key in seen:
                continue
            for bound in self.resolve(self.bindings.get(key, set()), seen | {key}):
                for k in origin[3]:
                    bound = _index(bound, k) if bound else None
                if bound:
                    out.add(bound)
        return out


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
        self.flow = _Flow(tree)
        self.qualnames: list[str] = []  # the function being visited, as _Flow names it

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
        self.qualnames.append(f"{self.qualnames[-1]}.{node.name}" if self.qualnames else node.name)
        self.generic_visit(node)
        self.qualnames.pop()
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.qualnames.append(f"{self.qualnames[-1]}.{node.name}" if self.qualnames else node.name)
        self.generic_visit(node)
        self.qualnames.pop()

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

    def _kwargs(self, node: ast.Call) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, Document], ...]]:
        """(keyword, origin) for every place each keyword argument's value may come from."""
        scope = self.qualnames[-1] if self.qualnames else None
        out, docs = [], []
        for kw in node.keywords:
            if kw.arg is None:
                continue
            origins = self.flow.resolve(self.flow.eval(kw.value, scope))
            for origin in sorted(origins, key=str):
                if origin[0] == "doc":
                    out.append((kw.arg, f"doc:{origin[1]}"))
                    docs.append((kw.arg, origin[1]))
                else:
                    out.append((kw.arg, f"{origin[0]}:{origin[1]}"))
        return tuple(out), tuple(docs)

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
            kwargs, docs = self._kwargs(node)
            self.calls.append(Call(svc, operation, self.path.name, node.lineno, kwargs, docs))


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
