"""What user strategy code may use: one policy shared by the static validator and
the runtime guards in the sandbox process, so the two layers cannot drift apart.
"""

from __future__ import annotations

import re

# Top-level modules user code may import. Pure computation only: nothing here
# can reach the file system, the network or other processes without going
# through an attribute the validator refuses (see BANNED_ATTRIBUTES).
ALLOWED_MODULES = frozenset(
    {
        "bisect",
        "collections",
        "datetime",
        "decimal",
        "fractions",
        "functools",
        "heapq",
        "itertools",
        "math",
        "numpy",
        "pandas",
        "random",
        "statistics",
    }
)

# Builtins available to user code. Everything else (open, exec, eval, compile,
# __import__, getattr, setattr, delattr, globals, locals, vars, input, breakpoint,
# help, memoryview, type, ...) is absent at runtime and refused statically.
SAFE_BUILTINS = frozenset(
    {
        "abs",
        "all",
        "any",
        "ascii",
        "bin",
        "bool",
        "bytearray",
        "bytes",
        "callable",
        "chr",
        "classmethod",
        "complex",
        "dict",
        "divmod",
        "enumerate",
        "filter",
        "float",
        "format",
        "frozenset",
        "hash",
        "hex",
        "int",
        "isinstance",
        "issubclass",
        "iter",
        "len",
        "list",
        "map",
        "max",
        "min",
        "next",
        "object",
        "oct",
        "ord",
        "pow",
        "print",
        "property",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "slice",
        "sorted",
        "staticmethod",
        "str",
        "sum",
        "super",
        "tuple",
        "zip",
        # constants and exceptions a strategy may raise or catch
        "Ellipsis",
        "NotImplemented",
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "Exception",
        "FloatingPointError",
        "IndexError",
        "KeyError",
        "LookupError",
        "NotImplementedError",
        "OSError",
        "OverflowError",
        "RuntimeError",
        "StopIteration",
        "TypeError",
        "ValueError",
        "ZeroDivisionError",
    }
)

# Names refused wherever they appear as a bare name, with the reason shown to the user.
BANNED_NAMES = {
    "__import__": "dynamic imports are not allowed; use an import statement",
    "breakpoint": "the debugger is not available",
    "compile": "compiling code at runtime is not allowed",
    "delattr": "dynamic attribute access is not allowed",
    "dir": "introspection is not allowed",
    "eval": "eval is not allowed",
    "exec": "exec is not allowed",
    "exit": "exiting the process is not allowed",
    "getattr": "dynamic attribute access is not allowed",
    "globals": "access to globals() is not allowed",
    "hasattr": "dynamic attribute access is not allowed",
    "help": "help is not available",
    "input": "reading input is not allowed",
    "locals": "access to locals() is not allowed",
    "memoryview": "memoryview is not allowed",
    "open": "file access is not allowed",
    "quit": "exiting the process is not allowed",
    "setattr": "dynamic attribute access is not allowed",
    "type": "type() is not allowed; use isinstance()",
    "vars": "access to vars() is not allowed",
}

# Attribute names refused on any object. They either lead out of the sandbox
# (frames and globals, module handles such as ``numpy.ctypeslib``) or touch the
# file system (numpy/pandas loaders and writers). The kernel-level limits in the
# worker block file and network access anyway; this gives a clear message early.
BANNED_ATTRIBUTES = frozenset(
    {
        # frames, code and tracebacks: the way from a generator to real builtins
        "ag_code",
        "ag_frame",
        "cr_code",
        "cr_frame",
        "f_back",
        "f_builtins",
        "f_code",
        "f_globals",
        "f_locals",
        "gi_code",
        "gi_frame",
        "gi_yieldfrom",
        "tb_frame",
        "tb_next",
        # module handles reachable from allowed modules
        "builtins",
        "ctypes",
        "ctypeslib",
        "distutils",
        "f2py",
        "importlib",
        "io",
        "marshal",
        "os",
        "pathlib",
        "pickle",
        "shutil",
        "socket",
        "subprocess",
        "sys",
        "testing",
        # modules that hand out frames, locals, every live object or an eval of a string;
        # numpy and pandas import them (``numpy.ma.core.inspect``, ``pandas.core.interchange.utils.typing``):
        # through them a strategy could read the engine's whole candle series
        "codecs",
        "dataclasses",
        "dis",
        "gc",
        "inspect",
        "pa",
        "pc",
        "platform",
        "pyarrow",
        "tokenize",
        "traceback",
        "types",
        "typing",
        "warnings",
        "weakref",
        # pandas expression engines (their own attribute access rules)
        "eval",
        "query",
        # numpy / pandas file I/O
        "DataSource",
        "fromfile",
        "genfromtxt",
        "load",
        "loadtxt",
        "memmap",
        "open_memmap",
        "save",
        "savetxt",
        "savez",
        "savez_compressed",
        "tofile",
        "to_clipboard",
        "to_csv",
        "to_excel",
        "to_feather",
        "to_hdf",
        "to_json",
        "to_latex",
        "to_markdown",
        "to_orc",
        "to_parquet",
        "to_pickle",
        "to_sql",
        "to_stata",
        "to_xml",
    }
)

# Any attribute starting with one of these prefixes is refused too.
BANNED_ATTRIBUTE_PREFIXES = ("_", "read_")

# String literals that spell a dunder name are refused: they are only useful to
# reach an attribute by name, which is how most sandbox escapes start.
DUNDER_STRING = re.compile(r"__\w+__")

# The names injected into every user module (no import needed).
PROVIDED_NAMES = ("Strategy", "SignalStrategy", "Param", "Signals", "indicators")

# Base classes a user strategy class may derive from, and the method each needs.
STRATEGY_BASES = {"Strategy": "on_data", "SignalStrategy": "signals"}

MAX_SOURCE_BYTES = 200_000


def attribute_problem(name: str) -> str | None:
    """Why the attribute ``name`` may not be used, or None if it may."""
    if name.startswith("__"):
        return f"access to dunder attribute '{name}' is not allowed"
    if name in BANNED_ATTRIBUTES:
        return f"attribute '{name}' is not allowed in strategy code"
    for prefix in BANNED_ATTRIBUTE_PREFIXES:
        if name.startswith(prefix):
            if prefix == "_":
                return f"access to private attribute '{name}' is not allowed"
            return f"attribute '{name}' is not allowed (no file access in strategy code)"
    return None


def module_problem(dotted: str) -> str | None:
    """Why ``import dotted`` is refused, or None if it is allowed."""
    parts = dotted.split(".")
    if parts[0] not in ALLOWED_MODULES:
        allowed = ", ".join(sorted(ALLOWED_MODULES))
        return f"import of '{dotted}' is not allowed (allowed modules: {allowed})"
    for part in parts[1:]:
        if attribute_problem(part):
            return f"import of '{dotted}' is not allowed"
    return None
