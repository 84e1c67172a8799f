"""Every chapter exists as a reviewed MyST markdown file and its jupytext-paired notebook, in sync.

The markdown file (``chapters/NN_name.md``) is the source people review; the notebook
(``chapters/NN_name.ipynb``) is what nbmake executes, what the book page is built from, and what
the Colab button opens. So the two must hold the same cells, and the committed notebook must carry
no outputs (they are produced once per build, in a staging copy). Fix a failure with ``make sync``.
"""

from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
MARKDOWN = sorted(CHAPTERS.glob("*.md"))
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))


def _ids(paths):
    return [p.name for p in paths]


def _is_paired(md: Path) -> bool:
    formats = jupytext.read(md).metadata.get("jupytext", {}).get("formats", "")
    return "ipynb" in formats.split(",")


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """(type, source, tags) of each cell, with whitespace at the ends of the source ignored."""
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


@pytest.mark.parametrize("md", MARKDOWN, ids=_ids(MARKDOWN))
def test_markdown_is_paired(md):
    """An unpaired chapters/*.md would never reach the book: _config.yml excludes chapters/*.md."""
    assert _is_paired(md), (f"{md.name} has no jupytext header pairing it with a notebook; add one with "
                            f"'jupytext --set-formats ipynb,md:myst {md.relative_to(ROOT)}'")


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_markdown_source(ipynb):
    assert ipynb.with_suffix(".md").exists(), f"{ipynb.name} has no paired {ipynb.stem}.md (the reviewed source)"


@pytest.mark.parametrize("md", MARKDOWN, ids=_ids(MARKDOWN))
def test_pair_in_sync(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{md.name} is paired but {ipynb.name} is missing: run 'make sync'"
    from_md, from_ipynb = _cells(jupytext.read(md)), _cells(jupytext.read(ipynb))
    code_md = [c for c in from_md if c[0] == "code"]
    code_ipynb = [c for c in from_ipynb if c[0] == "code"]
    assert len(code_md) == len(code_ipynb), (f"{md.name} has {len(code_md)} code cells, {ipynb.name} "
                                             f"{len(code_ipynb)}: run 'make sync'")
    for i, (a, b) in enumerate(zip(code_md, code_ipynb)):
        assert a == b, f"code cell {i} differs between {md.name} and {ipynb.name}: run 'make sync'\n{a}\n---\n{b}"
    # The page is built from the notebook, so its prose must be the reviewed prose too.
    assert from_md == from_ipynb, f"markdown cells differ between {md.name} and {ipynb.name}: run 'make sync'"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_no_outputs(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{ipynb.name}: code cells {dirty} carry outputs; strip them with 'make sync'"
