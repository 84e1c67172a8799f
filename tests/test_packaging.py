"""requirements.txt and pyproject.toml agree, and torch never floats to a CUDA build."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def read_requirements(name: str) -> dict[str, Requirement]:
    out = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            out[req.name.lower()] = req
    return out


REQUIREMENTS = read_requirements("requirements.txt")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEPENDENCIES = {Requirement(d).name.lower(): Requirement(d) for d in PYPROJECT["project"]["dependencies"]}
TOOLCHAIN = {"jupyter-book", "sphinx", "myst-nb", "sphinx-book-theme", "sphinx-exercise", "sphinx-togglebutton",
             "jupytext", "nbconvert", "ipykernel", "nbmake", "pytest", "pytest-xdist", "pytest-socket"}


def test_torch_is_not_in_requirements_txt():
    assert "torch" not in REQUIREMENTS


def test_cpu_requirements_pin_torch():
    cpu = (ROOT / "requirements-cpu.txt").read_text()
    assert "torch==2.13.0" in cpu.splitlines() and "-r requirements.txt" in cpu.splitlines()


def test_runtime_libraries_have_both_bounds_and_match_pyproject():
    runtime = {name: req for name, req in REQUIREMENTS.items() if name not in TOOLCHAIN}
    assert {"transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes"} <= set(runtime)
    for name, req in runtime.items():
        operators = {spec.operator for spec in req.specifier}
        assert operators == {">=", "<"}, f"{name}: give a lower and an upper bound, got {req.specifier}"
        assert name in DEPENDENCIES, f"{name} is in requirements.txt but not in pyproject.toml"
        assert DEPENDENCIES[name].specifier == req.specifier, f"{name}: requirements.txt and pyproject.toml differ"
    assert set(DEPENDENCIES) - set(runtime) == {"torch"}


def test_toolchain_is_pinned_exactly():
    for name in TOOLCHAIN:
        assert name in REQUIREMENTS, f"{name} missing from requirements.txt"
        assert [s.operator for s in REQUIREMENTS[name].specifier] == ["=="], f"pin {name} exactly"


def test_torch_has_only_a_lower_bound_in_pyproject():
    assert {s.operator for s in DEPENDENCIES["torch"].specifier} == {">="}


def test_package_ships_the_tiny_model():
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert PYPROJECT["project"]["name"] == "posttrain-course"
    assert "assets/**/*" in setuptools["package-data"]["posttrain_utils"]
