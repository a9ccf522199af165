"""The benchmark's input configurations, as exact-length token id lists cut from real text.

Timing depends only on token counts, but the ids come from real prose (Python standard-library
docstrings, present on every machine) tokenized with the model's own tokenizer, so nothing
about the inputs is synthetic except where each row is cut.
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from mlx_jina.errors import InputError
from mlx_jina.spec import package_spec

SHORT = 12  # tokens of a short query, "Query: " prefix included
MEDIUM, LONG, VERY_LONG = 120, 520, 2500
NOTE_MAX = 400  # the ingest chunker's default max_tokens: notes chunks are never longer
NOTES = 64  # chunks in the realistic notes batch
_SOURCES = ("argparse", "collections/__init__", "pathlib", "subprocess", "typing", "functools", "json/__init__",
            "logging/__init__", "dataclasses", "inspect", "shutil", "tarfile", "zipfile/__init__", "email/message",
            "unittest/case", "asyncio/tasks", "csv", "datetime", "decimal", "fractions", "random", "statistics")


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    ids: list[list[int]]  # one token id list per text, task prefix included
    tasks: list[str]  # one Jina API task per text

    @property
    def tokens(self) -> int:
        return sum(len(row) for row in self.ids)

    def groups(self, adapter_of: Callable[[str], str]) -> dict[str, list[int]]:
        """Row indices per adapter: what a path with one active adapter per call must run separately."""
        out: dict[str, list[int]] = {}
        for i, task in enumerate(self.tasks):
            out.setdefault(adapter_of(task), []).append(i)
        return out


def docstrings() -> list[str]:
    """Docstrings of a fixed list of stdlib modules, in source order (stable across machines)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in _SOURCES:
        path = stdlib / f"{name}.py"
        if not path.is_file():
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    out.append(doc)
    return out


def build_workloads(tokenizer: Tokenizer) -> list[Workload]:
    """Every configuration of the issue, in table order."""
    tasks = package_spec().tasks
    query, passage = tasks["retrieval.query"].prompt, tasks["retrieval.passage"].prompt
    texts = docstrings()
    stream = [i for e in tokenizer.encode_batch(texts, add_special_tokens=False) for i in e.ids]
    q_prefix = tokenizer.encode(query, add_special_tokens=False).ids
    d_prefix = tokenizer.encode(passage, add_special_tokens=False).ids
    cursor = 0

    def cut(prefix: list[int], length: int) -> list[int]:
        """The next `length - len(prefix)` tokens of the docstring stream, after the prefix."""
        nonlocal cursor
        body = length - len(prefix)
        if cursor + body > len(stream):
            cursor = 0
        row = prefix + stream[cursor: cursor + body]
        cursor += body
        return row

    def rows(name: str, description: str, count: int, length: int, task: str = "retrieval.passage") -> Workload:
        prefix = q_prefix if task == "retrieval.query" else d_prefix
        return Workload(name, description, [cut(prefix, length) for _ in range(count)], [task] * count)

    notes = [d_prefix + e.ids[:NOTE_MAX - len(d_prefix)]
             for e in tokenizer.encode_batch(texts[:NOTES], add_special_tokens=False)]
    cycle = list(tasks)
    return [
        rows("query", f"1 short query ({SHORT} tok)", 1, SHORT, "retrieval.query"),
        rows("doc-120", f"1 document, {MEDIUM} tok", 1, MEDIUM),
        rows("doc-520", f"1 document, {LONG} tok", 1, LONG),
        rows("doc-2500", f"1 document, {VERY_LONG} tok", 1, VERY_LONG),
        *(rows(f"short-{n}", f"{n} short queries", n, SHORT, "retrieval.query") for n in (8, 32, 128, 256)),
        *(rows(f"long-{n}", f"{n} documents of {LONG} tok", n, LONG) for n in (8, 32)),
        Workload("notes", f"{NOTES} real docstrings as notes chunks (<= {NOTE_MAX} tok), one task",
                 notes, ["retrieval.passage"] * NOTES),
        Workload("notes-mixed", f"the same {NOTES} chunks, tasks cycling over all {len(cycle)} (4 adapters)",
                 notes, [cycle[i % len(cycle)] for i in range(NOTES)]),
    ]


def select(workloads: list[Workload], names: list[str] | None) -> list[Workload]:
    """The named subset, in table order; unknown names raise InputError listing the known ones."""
    if not names:
        return workloads
    known = {w.name for w in workloads}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown rows {unknown}; choose from {[w.name for w in workloads]}")
    return [w for w in workloads if w.name in names]
