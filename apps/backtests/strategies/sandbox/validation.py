"""Static validation of user strategy code, before it is ever executed.

This is the first of three layers (see docs/sandbox.md): it gives the user a
precise, line-numbered message for everything the policy refuses. The runtime
guards and the OS-level limits of the sandbox process do not rely on it.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass

from . import policy


@dataclass(frozen=True)
class CodeIssue:
    """One problem in user code; ``line``/``col`` are 1-based (0 when not tied to a place)."""

    line: int
    col: int
    message: str

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.issues: list[CodeIssue] = []

    def add(self, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", 0) or 0
        col = getattr(node, "col_offset", -1) + 1
        self.issues.append(CodeIssue(line, max(col, 0), message))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            problem = policy.module_problem(alias.name)
            if problem:
                self.add(node, problem)
            if alias.asname and alias.asname.startswith("__"):
                self.add(node, f"name '{alias.asname}' is not allowed")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.add(node, "relative imports are not allowed")
            return
        module = node.module or ""
        problem = policy.module_problem(module)
        if problem:
            self.add(node, problem)
            return
        for alias in node.names:
            if alias.name == "*":
                self.add(node, f"'from {module} import *' is not allowed; import names explicitly")
                continue
            problem = policy.attribute_problem(alias.name)
            if problem:
                self.add(node, f"importing '{alias.name}' from '{module}' is not allowed")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in policy.BANNED_NAMES:
            self.add(node, f"'{node.id}': {policy.BANNED_NAMES[node.id]}")
        elif node.id.startswith("__"):
            self.add(node, f"name '{node.id}' is not allowed")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        problem = policy.attribute_problem(node.attr)
        if problem:
            self.add(node, problem)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and policy.DUNDER_STRING.search(node.value):
            self.add(node, "strings naming dunder attributes are not allowed")

    def _check_definition_name(self, node: ast.AST, name: str) -> None:
        if name == "__init__":
            self.add(node, "defining '__init__' is not allowed; put set-up code in initialize()")
        elif name.startswith("__"):
            self.add(node, f"defining '{name}' is not allowed")
        elif name in policy.BANNED_NAMES:
            self.add(node, f"the name '{name}' is reserved")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check_definition_name(node, node.name)
        self._check_arguments(node.args)
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.add(node, "async code is not supported in strategies")

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._check_arguments(node.args)
        self.generic_visit(node)

    def _check_arguments(self, args: ast.arguments) -> None:
        every = args.posonlyargs + args.args + args.kwonlyargs
        every += [a for a in (args.vararg, args.kwarg) if a is not None]
        for arg in every:
            if arg.arg.startswith("__"):
                self.add(arg, f"argument name '{arg.arg}' is not allowed")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._check_definition_name(node, node.name)
        for keyword in node.keywords:
            self.add(node, f"class keyword '{keyword.arg}' (metaclasses) is not allowed")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            if name.startswith("__"):
                self.add(node, f"name '{name}' is not allowed")

    visit_Nonlocal = visit_Global  # type: ignore[assignment]

    def visit_Await(self, node: ast.Await) -> None:
        self.add(node, "async code is not supported in strategies")


def _check_strategy_class(tree: ast.Module) -> list[CodeIssue]:
    candidates: list[tuple[ast.ClassDef, str]] = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in policy.STRATEGY_BASES:
                candidates.append((node, base.id))
                break
    if not candidates:
        return [
            CodeIssue(
                1,
                0,
                "no strategy class found: define a class deriving from Strategy "
                "(with on_data) or SignalStrategy (with signals)",
            )
        ]
    if len(candidates) > 1:
        names = ", ".join(c.name for c, _ in candidates)
        return [
            CodeIssue(
                candidates[1][0].lineno,
                candidates[1][0].col_offset + 1,
                f"define exactly one strategy class (found {names})",
            )
        ]
    cls, base = candidates[0]
    method = policy.STRATEGY_BASES[base]
    defined = {item.name for item in cls.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if method not in defined:
        return [
            CodeIssue(
                cls.lineno,
                cls.col_offset + 1,
                f"class {cls.name}({base}) must define a method '{method}'",
            )
        ]
    return []


def validate_code(source: str) -> list[CodeIssue]:
    """Check user strategy source; an empty list means it may be run in the sandbox.

    Checks syntax, the import allowlist, refused names and attributes (dunder and
    private attributes, dynamic attribute access, eval/exec/open/...), and that
    exactly one class derives from ``Strategy`` (with ``on_data``) or
    ``SignalStrategy`` (with ``signals``). Issues carry 1-based line numbers.
    """
    if not isinstance(source, str):
        return [CodeIssue(0, 0, "source must be text")]
    if len(source.encode("utf-8", "replace")) > policy.MAX_SOURCE_BYTES:
        return [CodeIssue(0, 0, f"source is larger than {policy.MAX_SOURCE_BYTES} bytes")]
    if "\x00" in source:
        return [CodeIssue(0, 0, "source contains a NUL byte")]
    try:
        tree = ast.parse(source, filename="<strategy>", mode="exec")
    except SyntaxError as exc:
        return [CodeIssue(exc.lineno or 0, exc.offset or 0, f"syntax error: {exc.msg}")]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [CodeIssue(0, 0, f"cannot parse source: {exc}")]
    checker = _Checker()
    try:
        checker.visit(tree)
    except RecursionError:
        return [CodeIssue(0, 0, "source is nested too deeply")]
    issues = sorted(checker.issues, key=lambda i: (i.line, i.col, i.message))
    issues.extend(_check_strategy_class(tree))
    return issues
