"""The Jupyter Book configuration matches the repository: every toc entry exists, pages are built
from the notebooks (so they get a Colab button), and notebooks are never executed twice."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
REPO_URL = "https://github.com/posttrain-course/posttrain-course"


def toc_files(node=TOC) -> list[str]:
    """Every ``file:`` entry of _toc.yml, in order (the root excluded)."""
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []):
                out.extend(toc_files(child))
    return out


def excluded(path: str) -> bool:
    """Whether Sphinx would skip `path` (relative to the book root) under _config.yml's exclude_patterns.

    Sphinx prunes a directory that matches a pattern, so the file's parent directories are tried too.
    """
    from sphinx.util.matching import Matcher

    matcher = Matcher(CONFIG["sphinx"]["config"]["exclude_patterns"])
    parts = path.split("/")
    return any(matcher("/".join(parts[:i])) for i in range(1, len(parts) + 1))


CHAPTER_FILES = toc_files()


def test_root_page_exists():
    assert TOC["root"] == "index"
    assert (ROOT / "index.md").exists()
    assert not excluded("index.md")


def test_toc_lists_the_chapters_in_order():
    assert CHAPTER_FILES[:4] == ["chapters/00_introduction", "chapters/01_data_formats", "chapters/02_sft",
                                 "chapters/03_peft"]
    numbers = [int(re.match(r"chapters/(\d+)_", f).group(1)) for f in CHAPTER_FILES]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("entry", CHAPTER_FILES)
def test_toc_entry_is_a_paired_notebook(entry):
    assert (ROOT / f"{entry}.ipynb").exists(), f"{entry}.ipynb is missing (pair {entry}.md with 'make sync')"
    assert (ROOT / f"{entry}.md").exists(), f"{entry}.md, the reviewed source, is missing"
    assert excluded(f"{entry}.md"), f"{entry}.md must be excluded so that the page is built from the notebook"
    assert not excluded(f"{entry}.ipynb")


def test_every_chapter_notebook_is_in_the_toc():
    """A notebook outside the toc is a Sphinx warning, hence a failed `jupyter-book build -W`."""
    listed = set(CHAPTER_FILES)
    missing = [p.name for p in sorted((ROOT / "chapters").glob("*.ipynb")) if f"chapters/{p.stem}" not in listed]
    assert not missing, f"add to _toc.yml: {missing}"


@pytest.mark.parametrize("path", ["README.md", "CONTRIBUTING.md", "data/README.md", ".venv/x.md", "_build/x.md", "_stage/index.md",
                                  "posttrain_utils/README.md", "tests/x.md", "chapters/.ipynb_checkpoints/a.ipynb"])
def test_non_book_files_are_excluded(path):
    assert excluded(path)


def test_notebooks_are_executed_once_outside_the_build():
    assert CONFIG["execute"]["execute_notebooks"] == "off"


def test_colab_button_points_at_this_repository():
    assert CONFIG["repository"]["url"] == REPO_URL
    assert CONFIG["repository"]["branch"] == "main"
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert f"git clone -q {REPO_URL} /content/course" in (ROOT / "CONTRIBUTING.md").read_text()


def test_teaching_extensions_are_enabled():
    extensions = CONFIG["sphinx"]["extra_extensions"]
    assert "sphinx_exercise" in extensions and "sphinx_togglebutton" in extensions
    assert {"dollarmath", "colon_fence", "amsmath"} <= set(CONFIG["parse"]["myst_enable_extensions"])
