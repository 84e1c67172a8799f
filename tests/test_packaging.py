"""What `pip install` gets matches what the code needs: requirements.txt and pyproject.toml agree, every
library `posttrain_utils` imports is declared, torch never floats to a CUDA build, the book toolchain is
pinned, and setuptools ships every subpackage and the tiny model.

Nothing here restates a version: the files are compared with each other and with the code.
"""

import ast
import glob
import os
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "posttrain_utils"


def read_requirements(path: Path) -> dict[str, tuple[Requirement, str]]:
    """name -> (requirement, its trailing comment) of each requirement line (options like -r skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        spec, _, comment = line.partition("#")
        spec = spec.strip()
        if spec and not spec.startswith("-"):
            req = Requirement(spec)
            out[canonicalize_name(req.name)] = (req, comment.strip())
    return out


def includes(path: Path) -> list[str]:
    return [line.split()[1] for line in path.read_text().splitlines()
            if line.strip().startswith(("-r ", "--requirement "))]


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEPENDENCIES = {canonicalize_name(Requirement(d).name): Requirement(d) for d in PYPROJECT["project"]["dependencies"]}
REQUIREMENTS = read_requirements(ROOT / "requirements.txt")
CPU_REQUIREMENTS = read_requirements(ROOT / "requirements-cpu.txt")
# Runtime libraries are the package's own dependencies; every other requirements.txt line is book/test toolchain.
TOOLCHAIN = sorted(set(REQUIREMENTS) - set(DEPENDENCIES))
CHAPTER_NUMBERS = {int(p.name.split("_", 1)[0]) for p in (ROOT / "chapters").glob("[0-9]*_*.md")}


def imported_libraries(package_dir: Path) -> dict[str, list[str]]:
    """Top-level third-party modules imported anywhere in `package_dir` (lazy imports included) -> importers."""
    found: dict[str, list[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("__future__", package_dir.name):
                    found.setdefault(top, []).append(str(path.relative_to(package_dir.parent)))
    return found


def top_level_modules(name: str) -> set[str]:
    """The top-level modules installed distribution `name` provides (empty if it is not installed)."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return set()
    listed = (dist.read_text("top_level.txt") or "").split()
    return set(listed) or {Path(f).parts[0].removesuffix(".py") for f in dist.files or ()
                           if not Path(f).parts[0].endswith((".dist-info", ".data", ".pth"))}


def distribution(module: str, declared) -> str:
    """The declared distribution that provides top-level `module` (the module's own name if none does)."""
    if canonicalize_name(module) in declared:
        return canonicalize_name(module)
    return next((name for name in sorted(declared) if module in top_level_modules(name)), canonicalize_name(module))


def test_every_imported_library_is_declared():
    """A library the code imports but nobody declares works here only because something else pulled it in."""
    imports = imported_libraries(ROOT / PACKAGE)
    assert imports, "the import scan found nothing"
    problems = []
    for module, users in sorted(imports.items()):
        name = distribution(module, {*DEPENDENCIES, *REQUIREMENTS, *CPU_REQUIREMENTS})
        if name not in DEPENDENCIES:
            problems.append(f"{name} (imported in {users[0]}) is not in pyproject.toml's dependencies")
        if name not in REQUIREMENTS and name not in CPU_REQUIREMENTS:
            problems.append(f"{name} (imported in {users[0]}) is not in requirements.txt")
    assert not problems, "\n".join(problems)


def test_runtime_ranges_agree():
    """pyproject.toml (what `pip install -e .` enforces) and requirements.txt (what `make env` installs)."""
    problems = []
    for name, dep in sorted(DEPENDENCIES.items()):
        if name in CPU_REQUIREMENTS and name not in REQUIREMENTS:
            continue  # torch: see test_torch_never_floats_to_a_cuda_build
        if name not in REQUIREMENTS:
            problems.append(f"{name}: in pyproject.toml, missing from requirements.txt")
        elif REQUIREMENTS[name][0].specifier != dep.specifier:
            problems.append(f"{name}: pyproject.toml says {dep.specifier}, "
                            f"requirements.txt {REQUIREMENTS[name][0].specifier}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(set(DEPENDENCIES) & set(REQUIREMENTS)))
def test_runtime_requirement_has_bounds_and_names_its_chapters(name):
    req, comment = REQUIREMENTS[name]
    operators = {spec.operator for spec in req.specifier}
    assert {">=", "<"} <= operators and operators <= {">=", "<", "!="}, (
        f"{name}: give a lower (>=, the measured version) and an upper (<) bound, got '{req.specifier}'")
    lower = next(s.version for s in req.specifier if s.operator == ">=")
    upper = next(s.version for s in req.specifier if s.operator == "<")
    assert req.specifier.contains(lower) and not req.specifier.contains(upper), f"{name}: empty range {req.specifier}"
    named = set()
    for first, last in re.findall(r"\bch(?:apters?)?\.? ?(\d+)(?:\s*-\s*(\d+))?", comment):
        named |= set(range(int(first), int(last or first) + 1))
    assert named, f"{name}: say in a comment which chapters need it ('# ch 2-3: ...'), got {comment!r}"
    assert named <= CHAPTER_NUMBERS, (
        f"{name}: the comment names chapters {sorted(named - CHAPTER_NUMBERS)} that do not exist")


@pytest.mark.parametrize("name", TOOLCHAIN)
def test_toolchain_is_pinned_exactly(name):
    """Anything in requirements.txt that the package does not depend on is book/test toolchain."""
    req, _ = REQUIREMENTS[name]
    assert [s.operator for s in req.specifier] == ["=="], (
        f"{name}: pin the toolchain with == (or, if posttrain_utils needs it, add it to pyproject.toml), "
        f"got '{req.specifier}'")


def test_torch_never_floats_to_a_cuda_build():
    """requirements.txt never names torch (pip would pull a CUDA build); requirements-cpu.txt pins it and pulls in
    requirements.txt; the pin lies in pyproject.toml's range; `make env` installs the same pin."""
    assert "torch" not in REQUIREMENTS, "requirements.txt must not list torch"
    assert "torch" in DEPENDENCIES, "pyproject.toml must declare torch"
    assert {s.operator for s in DEPENDENCIES["torch"].specifier} == {">="}, (
        "pyproject.toml: torch takes a lower bound only, so that Colab and GPU machines keep their own build")
    pin = CPU_REQUIREMENTS["torch"][0].specifier
    assert [s.operator for s in pin] == ["=="], f"requirements-cpu.txt: pin torch exactly, got '{pin}'"
    version = next(iter(pin)).version
    assert DEPENDENCIES["torch"].specifier.contains(version), f"torch=={version} is outside pyproject's range"
    assert "requirements.txt" in includes(ROOT / "requirements-cpu.txt"), (
        "requirements-cpu.txt must -r requirements.txt")
    make_torch = re.search(r"^TORCH\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert make_torch and Requirement(make_torch.group(1)).specifier == pin, (
        f"Makefile's TORCH ({make_torch and make_torch.group(1)}) and requirements-cpu.txt (torch{pin}) differ")


# ----- what the wheel contains ----------------------------------------------------------------
def discovered_packages(config: dict, where: Path) -> set[str]:
    """The packages setuptools finds with pyproject's [tool.setuptools.packages.find] (as `pip install .` does)."""
    from setuptools.discovery import FlatLayoutPackageFinder, PackageFinder, PEP420PackageFinder

    find = config.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find")
    if find is None:
        return set(FlatLayoutPackageFinder.find(str(where)))
    finder = PEP420PackageFinder if find.get("namespaces", True) else PackageFinder
    found = set()
    for base in find.get("where", ["."]):
        found |= set(finder.find(str(where / base), exclude=find.get("exclude", ()),
                                 include=find.get("include", ("*",))))
    return found


def python_package_dirs(package_dir: Path) -> set[str]:
    return {".".join(p.parent.relative_to(package_dir.parent).parts) for p in package_dir.rglob("*.py")
            if "__pycache__" not in p.parts}


def test_every_subpackage_is_discovered():
    """A folder of modules setuptools does not find is missing from the wheel (an editable install hides it)."""
    missing = sorted(python_package_dirs(ROOT / PACKAGE) - discovered_packages(PYPROJECT, ROOT))
    assert not missing, (
        f"setuptools does not package {missing}: add an __init__.py or fix [tool.setuptools.packages.find]")


def shipped_data(config: dict, root: Path) -> set[Path]:
    """Files matched by [tool.setuptools.package-data] (globs relative to each package, as setuptools reads them)."""
    shipped = set()
    for package, patterns in config.get("tool", {}).get("setuptools", {}).get("package-data", {}).items():
        base = root / (package.replace(".", "/") if package != "*" else PACKAGE)
        for pattern in patterns:
            shipped |= {Path(p) for p in glob.glob(os.path.join(base, pattern), recursive=True) if os.path.isfile(p)}
    return shipped


def test_package_data_ships_every_asset():
    """Every non-Python file in the package (the tiny base model: config, tokenizer, weights) is in the wheel."""
    assets = {p for p in (ROOT / PACKAGE).rglob("*")
              if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert assets, "no data files found in the package"
    missing = sorted(str(p.relative_to(ROOT)) for p in assets - shipped_data(PYPROJECT, ROOT))
    assert not missing, f"[tool.setuptools.package-data] does not ship {missing}"
