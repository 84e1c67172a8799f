"""A chapter's exercises, read from its notebook: each exercise's gated solution split into the part
a student writes (the *answer*) and the checker call that grades it (the *check*).

Used by `student` (the edition without solutions) and `grade`; introduced on the page "For
instructors". The split follows CONTRIBUTING.md's exercise template: the solution's code cells sit
between ``:::{solution-start} LABEL`` and ``:::{solution-end}``, and end with
``assert exercises_xx.check_what(...)``. From those cells this module derives:

* the **check**: the checker-module imports and every ``assert <module>.check_*(...)`` statement;
* the **answer template**: the solution's other imports, then a stub for each name the check reads
  that the solution defines and the chapter has not defined before (``def f(...): raise
  NotImplementedError``, or ``name = ...``);
* the **reference answer**: the solution's code without its check statements (tests and
  `grade --reference` use it to prove that the reference scores full marks).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

START = re.compile(r"^:::\{solution-start\}\s+(\S+)\s*$")
END = re.compile(r"^:::\{solution-end\}\s*$")
EXERCISE = re.compile(r"^:::\{exercise\}\s+(.+?)\s*$")
LABEL = re.compile(r"^:label:\s+(\S+)\s*$")
CHECKER_MODULE = "posttrain_utils.exercises"


@dataclass
class Exercise:
    """One exercise of a chapter.

    Args:
        label: its MyST label, e.g. ``"intro-ex1"``.
        title: its title, e.g. ``"0.1 Count the parameters"``.
        solution: the solution's code cells, in order.
        prose: the solution's markdown lines (what the student edition must not show).
        defined_before: top-level names the chapter binds before the solution.
    """

    label: str
    title: str
    solution: list[str] = field(default_factory=list)
    prose: list[str] = field(default_factory=list)
    defined_before: set[str] = field(default_factory=set)

    @property
    def number(self) -> str:
        """The exercise's number, e.g. ``"0.1"``."""
        return self.title.split()[0]

    def _statements(self):
        for code in self.solution:
            tree = ast.parse(code)
            for node in tree.body:
                yield code, node

    def check_statements(self) -> list[str]:
        """The solution's ``assert <module>.check_*(...)`` statements, as source."""
        return [ast.get_source_segment(code, node) for code, node in self._statements() if _is_check(node)]

    def checker_imports(self) -> list[str]:
        """The solution's imports of checker modules (`posttrain_utils.exercises`)."""
        return [ast.get_source_segment(code, node) for code, node in self._checker_nodes()]

    def check_source(self) -> str:
        """The check cell: checker imports, then the checker calls."""
        checks = self.check_statements()
        if not checks:
            raise ValueError(f"exercise {self.label}: its solution has no `assert <module>.check_*(...)`")
        header = f"# The check for exercise {self.number} ({self.label}): run it, do not edit it."
        return "\n".join([header, *self.checker_imports(), *checks])

    def needed_names(self) -> list[str]:
        """Names the check reads that the solution defines and the chapter has not defined before."""
        bound = {name for _, node in self._statements() for name in _bound(node)}
        bound -= {name for _, node in self._checker_nodes() for name in _bound(node)}
        names = []
        for check in self.check_statements():
            for node in ast.walk(ast.parse(check)):
                if (isinstance(node, ast.Name) and node.id in bound and node.id not in self.defined_before
                        and node.id not in names):
                    names.append(node.id)
        return names

    def header(self) -> str:
        """The answer cell's first line; `grade` finds an answer cell by it when metadata is lost."""
        return f"# Exercise {self.number} ({self.label}): your answer. Only this cell is graded."

    def answer_template(self) -> str:
        """The answer cell a student starts from: imports, then one stub per needed name."""
        lines = [self.header()]
        imports = [ast.get_source_segment(code, node) for code, node in self._statements()
                   if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and not _is_checker(node))]
        lines += imports
        for name in self.needed_names():
            lines += ["", self._stub(name)]
        return "\n".join(lines).rstrip() + "\n"

    def _checker_nodes(self):
        return [(code, node) for code, node in self._statements() if _is_checker(node)]

    def _stub(self, name: str) -> str:
        for code, node in self._statements():
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                args = ast.unparse(node.args)
                return (f"def {name}({args}):\n"
                        f"    raise NotImplementedError(\"exercise {self.number}: write {name}\")")
            if isinstance(node, ast.ClassDef) and node.name == name:
                return f"class {name}:\n    ...  # exercise {self.number}: write {name}"
        return f"{name} = ...  # exercise {self.number}: your answer"

    def reference_answer(self) -> str:
        """The solution's code with its check statements removed (what a perfect student writes)."""
        cells = []
        for code in self.solution:
            tree = ast.parse(code)
            lines = code.splitlines()
            for node in sorted((n for n in tree.body if _is_check(n)), key=lambda n: -n.lineno):
                del lines[node.lineno - 1:node.end_lineno]
            cells.append("\n".join(lines).strip())
        return "\n\n".join([self.header()] + [cell for cell in cells if cell]) + "\n"


def _is_checker(node) -> bool:
    """Whether `node` imports a checker module (``from posttrain_utils.exercises import ...``)."""
    return isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CHECKER_MODULE)


def _is_check(node) -> bool:
    """Whether `node` is ``assert <module>.check_*(...)`` (not ``assert not ...``)."""
    return (isinstance(node, ast.Assert) and isinstance(node.test, ast.Call)
            and isinstance(node.test.func, ast.Attribute) and node.test.func.attr.startswith("check_"))


def _bound(node) -> list[str]:
    """Names a top-level statement binds, looking inside `with`, `for`, `if` and `try` blocks."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(alias.asname or alias.name).split(".")[0] for alias in node.names]
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For)):
        targets = [node.target]
    elif isinstance(node, ast.With):
        targets = [item.optional_vars for item in node.items]
    names = [n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)]
    for block in ("body", "orelse", "finalbody"):
        for child in getattr(node, block, []) if isinstance(node, (ast.With, ast.For, ast.If, ast.Try,
                                                                   ast.While)) else []:
            names += _bound(child)
    for handler in getattr(node, "handlers", []):
        for child in handler.body:
            names += _bound(child)
    return names


def _code_names(source: str) -> set[str]:
    """Names bound at top level by a code cell (magics and shell lines are skipped)."""
    kept = "\n".join("" if line.lstrip().startswith(("!", "%")) else line for line in source.splitlines())
    try:
        tree = ast.parse(kept)
    except SyntaxError:
        return set()
    return {name for node in tree.body for name in _bound(node)}


def read(notebook) -> list[Exercise]:
    """The exercises of a chapter notebook (an `nbformat` notebook read from its .md or .ipynb).

    Raises:
        ValueError: a solution without a preceding exercise, an unclosed solution, or no check.
    """
    exercises, titles, defined = [], {}, set()
    current: Exercise | None = None
    pending_title = None
    for cell in notebook.cells:
        if cell.cell_type == "code":
            if current is not None:
                current.solution.append(cell.source)
            else:
                defined |= _code_names(cell.source)
            continue
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if (match := EXERCISE.match(line)):
                pending_title = match.group(1)
            elif (match := LABEL.match(line)) and pending_title is not None:
                titles[match.group(1)] = pending_title
                pending_title = None
            elif (match := START.match(line)):
                label = match.group(1)
                if label not in titles:
                    raise ValueError(f"solution {label!r} has no exercise before it")
                current = Exercise(label, titles[label], defined_before=set(defined))
            elif END.match(line):
                if current is None:
                    raise ValueError("a solution-end without a solution-start")
                current.check_source()  # raises when the solution has no checker call
                exercises.append(current)
                current = None
            elif current is not None:
                current.prose.append(line)
    if current is not None:
        raise ValueError(f"solution {current.label!r} is never closed")
    return exercises


def load(path: str | Path):
    """A chapter's notebook, read from the paired .ipynb of `path` (.md or .ipynb) with `nbformat`
    (`tests/test_pairs_sync.py` keeps the pair identical)."""
    import nbformat

    notebook_path = Path(path).with_suffix(".ipynb")
    if not notebook_path.is_file():
        raise ValueError(f"{notebook_path}: no such notebook (pair the chapter with `make sync`)")
    return nbformat.read(notebook_path, as_version=4)


def read_chapter(path: str | Path) -> list[Exercise]:
    """The exercises of the chapter at `path` (its .md or .ipynb)."""
    return read(load(path))
