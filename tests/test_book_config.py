"""The Jupyter Book configuration works on the real repository: every toc entry exists, pages are built
from the notebooks (so they get a Colab button that opens a committed notebook), the first cell of
every notebook installs the course on Colab, and the syntax and directives the chapters use are enabled.

The configuration is not restated here: it is run through Jupyter Book's and Sphinx's own code
(`jupyter_book.config.get_final_config`, `sphinx_external_toc`, `sphinx.util.matching`) and the
result is checked against the files in the repository.
"""

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
SOURCE_SUFFIXES = (".rst", ".md", ".ipynb", ".myst")  # Sphinx's, and MyST-NB's


def final_config(user_yaml: dict) -> dict:
    """The Sphinx configuration `jupyter-book build` derives from `user_yaml` (validated, errors raised)."""
    from jupyter_book.config import get_final_config

    sphinx_config, _ = get_final_config(user_yaml=user_yaml, cli_config={"latex_individualpages": False},
                                        validate=True, raise_on_invalid=True)
    return sphinx_config


def toc_docnames(path: Path = ROOT / "_toc.yml") -> tuple[str, list[str]]:
    """(root, every other document in order), as sphinx_external_toc reads _toc.yml."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    site_map = parse_toc_yaml(path)
    return site_map.root.docname, [d for d in site_map if d != site_map.root.docname]


def discover(srcdir: Path, exclude_patterns: list[str]) -> dict[str, list[str]]:
    """docname -> source files Sphinx would find for it in `srcdir` (more than one is a build warning)."""
    from sphinx.project import EXCLUDE_PATHS
    from sphinx.util.matching import get_matching_files

    found: dict[str, list[str]] = {}
    for name in get_matching_files(srcdir, ("**",), [*exclude_patterns, *EXCLUDE_PATHS]):
        suffix = next((s for s in SOURCE_SUFFIXES if name.endswith(s)), None)
        if suffix:
            found.setdefault(name.removesuffix(suffix), []).append(name)
    return found


SPHINX = final_config(CONFIG)
ROOT_DOC, CHAPTER_DOCS = toc_docnames()
SOURCES = discover(ROOT, SPHINX["exclude_patterns"])
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))


def jupyter_book_keys() -> dict:
    """The option tree Jupyter Book reads: its default _config.yml merged with its JSON schema's properties."""
    import jupyter_book.config as jb

    def from_schema(node: dict) -> dict:
        return {k: from_schema(v) for k, v in node.get("properties", {}).items()}

    def merge(a: dict, b: dict) -> dict:
        return {k: merge(a.get(k) or {}, b.get(k) or {}) if isinstance(a.get(k) or b.get(k), dict) else None
                for k in {**a, **b}}

    def from_yaml(node):
        return {k: from_yaml(v) for k, v in node.items()} if isinstance(node, dict) else None

    return merge(from_yaml(yaml.safe_load(jb.PATH_YAML_DEFAULT.read_text())),
                 from_schema(json.loads(jb.PATH_JSON_SCHEMA.read_text())))


def unknown_keys(config: dict, known: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in config.items():
        if key not in known:
            out.append(prefix + key)
        elif isinstance(value, dict) and known[key]:  # a section with named options (not sphinx.config)
            out.extend(unknown_keys(value, known[key], f"{prefix}{key}."))
    return out


def test_config_is_valid_for_jupyter_book():
    """Jupyter Book ignores a misspelt or misplaced key without a word, and validates the known ones' types."""
    final_config(CONFIG)  # raises jsonschema.ValidationError on a wrong type
    unknown = unknown_keys(CONFIG, jupyter_book_keys())
    assert not unknown, f"_config.yml keys Jupyter Book does not read (misspelt or misplaced?): {unknown}"


def test_exclude_patterns_keep_jupyter_books_defaults():
    """_config.yml's exclude_patterns replaces Jupyter Book's default list, so it must repeat it."""
    defaults = final_config({})["exclude_patterns"]
    missing = sorted(set(defaults) - set(SPHINX["exclude_patterns"]))
    assert not missing, f"exclude_patterns drops Jupyter Book's defaults {missing}"


def test_each_page_has_exactly_one_source():
    """Two sources for one page (e.g. chapters/x.md and chapters/x.ipynb) fail `jupyter-book build -W`."""
    doubles = {doc: files for doc, files in SOURCES.items() if len(files) > 1}
    assert not doubles, f"Sphinx finds several sources for these pages (extend exclude_patterns): {doubles}"


def test_root_page_is_built():
    assert ROOT_DOC in SOURCES, f"the toc root {ROOT_DOC!r} has no source file, or it is excluded"


@pytest.mark.parametrize("docname", CHAPTER_DOCS)
def test_chapter_page_is_built_from_its_paired_notebook(docname):
    assert (ROOT / f"{docname}.md").exists(), f"{docname}.md, the reviewed source, is missing"
    assert (ROOT / f"{docname}.ipynb").exists(), f"{docname}.ipynb is missing (pair {docname}.md with 'make sync')"
    assert SOURCES.get(docname) == [f"{docname}.ipynb"], (
        f"Sphinx builds {docname} from {SOURCES.get(docname)}, not from the notebook: exclude the .md sources")


def test_every_chapter_file_is_in_the_toc():
    """only_build_toc_files drops any page missing from _toc.yml without a warning."""
    listed = set(CHAPTER_DOCS)
    missing = sorted({f"chapters/{p.stem}" for p in CHAPTERS.iterdir() if p.suffix in SOURCE_SUFFIXES} - listed)
    assert not missing, f"add to _toc.yml: {missing}"


# pages after the chapters that carry no number: the instructor's guide
UNNUMBERED_PAGES = ("chapters/instructors",)


def test_chapters_are_numbered_in_toc_order():
    """The book turns numbering off (chapters carry it in their title), so file, toc and title must agree."""
    numbers = []
    numbered = [doc for doc in CHAPTER_DOCS if doc not in UNNUMBERED_PAGES]
    assert CHAPTER_DOCS[:len(numbered)] == numbered, "the unnumbered pages come after the chapters"
    for docname in numbered:
        match = re.fullmatch(r"chapters/(\d+)_\w+", docname)
        assert match, f"{docname}: chapter files are named chapters/NN_name"
        number = int(match.group(1))
        text = (ROOT / f"{docname}.md").read_text()
        title = re.search(r"^# (.*)$", text, re.MULTILINE)
        assert title and title.group(1).startswith(f"{number}. "), (
            f"{docname}.md: the title should start with '{number}. ', got {title and title.group(1)!r}")
        numbers.append(number)
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), f"toc order {numbers}"


def test_staged_sources_hold_every_page():
    """`make stage` copies only BOOK_SOURCES (Makefile) to _stage, which is what gets built."""
    value = re.search(r"^BOOK_SOURCES\s*:?=\s*(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    staged = re.sub(r"\$\(wildcard ([^)]*)\)", r"\1", value).split()
    needed = ["_config.yml", "_toc.yml"] + [SOURCES[doc][0] for doc in [ROOT_DOC, *CHAPTER_DOCS] if doc in SOURCES]
    missing = [p for p in needed if not any(p == s or p.startswith(s.rstrip("/") + "/") for s in staged)]
    assert not missing, f"Makefile BOOK_SOURCES does not stage {missing}"


def test_colab_button_opens_a_committed_notebook():
    """sphinx-book-theme links Colab to github/<org>/<repo>/blob/<branch>/<path_to_docs><page>.ipynb."""
    theme = SPHINX["html_theme_options"]
    assert theme["launch_buttons"].get("colab_url"), "no Colab launch button configured"
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(\.git)?/?", theme["repository_url"])
    assert match, f"Colab only opens GitHub repositories, got {theme['repository_url']!r}"
    assert theme["repository_branch"], "repository.branch is empty"
    prefix = theme.get("path_to_docs", "").strip("/")
    for docname in CHAPTER_DOCS:
        path_in_repo = f"{prefix}/{docname}.ipynb" if prefix else f"{docname}.ipynb"
        assert (ROOT / path_in_repo).exists(), f"the Colab button of {docname} would open missing {path_in_repo}"


# ----- what the notebooks do on Colab ---------------------------------------------------------
def call_args(node: ast.AST, method: str) -> list[str] | None:
    """The string arguments of a ``get_ipython().<method>(...)`` call, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)):
        return [a.value for a in node.args]
    return None


def is_colab_guard(test: ast.expr) -> bool:
    """``"google.colab" in sys.modules``"""
    return (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.In)
            and isinstance(test.left, ast.Constant) and test.left.value == "google.colab"
            and ast.unparse(test.comparators[0]) == "sys.modules")


def colab_install_problems(source: str, repo_url: str) -> list[str]:
    """What is wrong with `source` as the Colab install cell (an empty list: nothing)."""
    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(source))  # !cmd and %magic -> get_ipython() calls
    guards = [n for n in tree.body if isinstance(n, ast.If) and is_colab_guard(n.test)]
    if not guards:
        return ['no top-level `if "google.colab" in sys.modules:` guard']
    guarded = {id(n) for g in guards for stmt in g.body for n in ast.walk(stmt)}
    problems = [f"runs outside the Colab guard: {ast.unparse(n)}" for n in ast.walk(tree)
                if (call_args(n, "system") or call_args(n, "run_line_magic")) and id(n) not in guarded]
    if not any(isinstance(n, ast.Import) and any(a.name == "sys" for a in n.names) for n in tree.body):
        problems.append("does not import sys before using sys.modules")
    body = [n for g in guards for stmt in g.body for n in ast.walk(stmt)]
    clones = [args[0].split() for n in body if (args := call_args(n, "system")) and args[0].startswith("git clone")]
    url = repo_url.rstrip("/").removesuffix(".git")
    clone = next((words for words in clones if url in (w.rstrip("/").removesuffix(".git") for w in words)), None)
    if clone is None:
        return problems + [f"does not `git clone` {repo_url} (clones: {clones})"]
    target = clone[-1] if clone[-1].rstrip("/").removesuffix(".git") != url else None
    if target is None:
        return problems + ["the git clone names no target directory"]
    installs = [args[1].split() for n in body if (args := call_args(n, "run_line_magic")) and args[0] == "pip"]
    if not any(w[:1] == ["install"] and "-e" in w and w[w.index("-e") + 1:w.index("-e") + 2] == [target]
               for w in installs):
        problems.append(f"does not `pip install -e {target}` (pip calls: {installs})")
    paths = [ast.unparse(n.args[1]) for n in body
             if isinstance(n, ast.Call) and ast.unparse(n.func) == "sys.path.insert" and len(n.args) == 2]
    if repr(target) not in paths and json.dumps(target) not in paths:
        problems.append(f"does not put {target} on sys.path (an editable install needs a kernel restart otherwise)")
    return problems


GOOD_CELL = ('import sys\nif "google.colab" in sys.modules:\n    !git clone -q {url} /content/course\n'
             '    %pip install -q -e /content/course\n    sys.path.insert(0, "/content/course")')


@pytest.mark.parametrize("source, expected", [
    (GOOD_CELL, None),
    (GOOD_CELL.replace('if "google.colab" in sys.modules:\n    !', '!').replace("\n    ", "\n"), "guard"),
    (GOOD_CELL.replace("{url}", "https://github.com/someone/else"), "git clone"),
    (GOOD_CELL.replace(" -e /content/course", " /content/course"), "pip install -e"),
    (GOOD_CELL.replace("\n    sys.path.insert(0, \"/content/course\")", ""), "sys.path"),
    (GOOD_CELL + '\n!pip install trl', "outside the Colab guard"),
], ids=["good", "unguarded", "other-repo", "not-editable", "no-sys-path", "unguarded-extra"])
def test_colab_cell_checker(source, expected):
    url = CONFIG["repository"]["url"]
    problems = colab_install_problems(source.format(url=url), url)
    assert (not problems) if expected is None else any(expected in p for p in problems), problems


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_installs_the_course_on_colab(ipynb):
    """The Colab button opens the bare notebook: its first code cell must fetch and install this repository."""
    nb = json.loads(ipynb.read_text())
    kernelspec = nb["metadata"].get("kernelspec", {})
    assert kernelspec.get("name") == "python3" and kernelspec.get("language") == "python", (
        f"{ipynb.name}: kernelspec {kernelspec} (Colab and nbmake start the kernel it names)")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, f"{ipynb.name} has no code cell"
    source = "".join(code[0]["source"])
    problems = colab_install_problems(source, CONFIG["repository"]["url"])
    assert not problems, f"{ipynb.name}, first code cell:\n" + "\n".join(problems) + f"\n---\n{source}"


# ----- syntax and directives the chapters use -------------------------------------------------
def chapter_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in [ROOT / "index.md", *sorted(CHAPTERS.glob("*.md"))]}


def registered_directives(extensions: list[str]) -> set[str]:
    """Directive names that docutils, Sphinx's core and `extensions` register (each extension's setup()
    is run against a recorder)."""
    import importlib

    from docutils.parsers.rst import directives

    class Recorder:
        def __init__(self):
            self.names = set()

        def add_directive(self, name, *args, **kwargs):
            self.names.add(name)

        def __getattr__(self, attr):  # every other Sphinx API: ignored
            return lambda *args, **kwargs: None

    app = Recorder()
    core = ["sphinx.directives", "sphinx.directives.code", "sphinx.directives.other", "sphinx.directives.patches"]
    for module in core + list(extensions):
        try:
            importlib.import_module(module).setup(app)
        except Exception:  # an extension whose setup needs a real Sphinx app registers its directives elsewhere
            pass
    return set(directives._directive_registry) | app.names


def test_chapter_directives_are_provided_by_enabled_extensions():
    known = registered_directives(SPHINX["extensions"]) | {"code-cell"}  # code-cell: MyST-NB's text notebooks
    used = {(name, m.group(1)) for name, text in chapter_texts().items()
            for m in re.finditer(r"^\s*(?:`{3,}|:{3,})\{([\w-]+)\}", text, re.MULTILINE)}
    unknown = sorted(f"{name}: {{{d}}}" for name, d in used if d not in known)
    assert not unknown, f"directives no enabled extension provides (sphinx.extra_extensions): {unknown}"


def test_chapter_syntax_extensions_are_enabled():
    """Without colon_fence a ::: block, and without dollarmath a $formula$, render as plain text, silently."""
    enabled = set(SPHINX.get("myst_enable_extensions", []))
    needs = {"colon_fence": r"^:{3,}\{", "dollarmath": r"(?<![\\$])\$[^\s$][^$\n]*\$(?!\d)"}
    missing = sorted({f"{ext} (used in {name})" for name, text in chapter_texts().items()
                      for ext, pattern in needs.items()
                      if ext not in enabled and re.search(pattern, strip_code(text), re.MULTILINE)})
    assert not missing, f"enable in _config.yml parse.myst_enable_extensions: {missing}"


def strip_code(text: str) -> str:
    """`text` without fenced code blocks and inline code (a $ there is not math)."""
    text = re.sub(r"^(`{3,})[^\n]*\n.*?^\1\s*$", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def test_math_renders_offline():
    """MathJax is served from the site itself (sphinx-mathjax-offline), not from a CDN, so the math of
    the chapters renders without internet; the extension is pinned with the rest of the toolchain."""
    import importlib

    assert "sphinx-mathjax-offline" in SPHINX["extensions"]
    assert re.search(r"^sphinx-mathjax-offline==\S+", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    bundle = Path(importlib.import_module("sphinx-mathjax-offline").__file__).parent / "static" / "mathjax"
    assert (bundle / "tex-chtml.js").is_file() and (bundle / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
