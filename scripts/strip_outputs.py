"""Strip outputs and execution counts from notebooks, rewriting only those that carry any.

Usage: python scripts/strip_outputs.py chapters/*.ipynb

Notebooks without outputs are left untouched (not even their modification time changes), so
`jupytext --sync` keeps treating the reviewed .md as the newer file of each pair.
"""

import sys

import nbformat


def strip(path: str) -> bool:
    """Remove the outputs of `path` in place. Returns whether the file was rewritten."""
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    dirty = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            cell["outputs"], cell["execution_count"] = [], None
            dirty = True
    if dirty:
        nbformat.write(nb, path)
    return dirty


if __name__ == "__main__":
    for notebook in sys.argv[1:]:
        if strip(notebook):
            print(f"stripped outputs from {notebook}")
