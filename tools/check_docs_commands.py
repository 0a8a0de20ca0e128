"""Check that every command and Python snippet shown in README.md and docs/*.md still works.

What is checked, without running any heavy work:

- ``embedlab ...`` commands (also ``python -m embedlab``, ``torchrun ... -m embedlab``), in
  fenced shell blocks and in inline code spans: parsed by the real command line's click parser
  (Typer builds it), so an unknown command, an unknown or misspelled option, a missing option
  value, an extra argument or a value outside a choice or of the wrong type fails. A ``...``
  in a command stands for elided options: then missing required options are not reported.
- ``python benchmarks/x.py ...`` and ``bash benchmarks/x.sh``: the script exists and every
  ``--option`` is one its ``argparse`` parser declares (read from the source, not run).
- ``make TARGET``: the target exists in the Makefile.
- ``benchmarks/results/...`` files named in inline code (on README.md and the benchmarks
  page also bare ``x.json`` names): they exist.
- Code fences: each is closed (an unclosed one turns the rest of the page into code).
- Python snippets (fenced ``python`` blocks): compiled; every ``from embedlab... import name``
  and every ``el.name`` after ``import embedlab as el`` must resolve. A block preceded by the
  line ``<!-- docs-check: run -->`` is also executed (in a fresh temporary directory, with
  ``tmp`` bound to it); keep those snippets to seconds.

Run: ``python tools/check_docs_commands.py`` (exit code 1 and one line per problem), or
``pytest tests/docs``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_MARKER = "<!-- docs-check: run -->"
SHELL_LANGS = {"bash", "sh", "shell", "console", "text", ""}
#: pages whose bare ``x.json`` code spans name files of benchmarks/results/
RESULTS_BY_NAME = {"README.md", "docs/benchmarks.md"}
ELLIPSIS = "..."


@dataclass(frozen=True)
class Snippet:
    """A command line or a Python block, with where it was found (``file:line``)."""

    kind: str  # "shell", "python", "file" (a results file named in the text) or "fence" (unclosed)
    text: str
    where: str
    run: bool = False
    inline: bool = False  # an inline code span: a mention, options may be left out


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/ (generated API pages included)."""
    files = [root / "README.md"]
    files += sorted((root / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)[^\n]*$")


def extract(path: Path, root: Path = ROOT) -> list[Snippet]:
    """Fenced shell lines, inline ``embedlab``/``python benchmarks`` spans and Python blocks."""
    rel = path.relative_to(root)
    lines = path.read_text().splitlines()
    out: list[Snippet] = []
    prose: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        run = any(lines[j].strip() == RUN_MARKER for j in range(max(0, i - 2), i))
        start = i + 1
        j = start
        # a closing fence is the fence's character alone, at least as long (CommonMark)
        closing = re.compile(re.escape(fence[0]) + "{" + str(len(fence)) + ",}")
        while j < len(lines) and not closing.fullmatch(lines[j].strip()):
            j += 1
        if j == len(lines):
            out.append(Snippet("fence", "code fence never closed (the rest of the page is code)",
                               f"{rel}:{i + 1}"))  # fmt: skip
        body = lines[start:j]
        for k, line in enumerate(body):
            if re.match(r"\s*(```+|~~~+)\w", line):
                out.append(Snippet("fence", "an opening fence inside a code block: a fence before "
                                   "it is missing or extra", f"{rel}:{start + k + 1}"))  # fmt: skip
        if lang in ("python", "py"):
            out.append(Snippet("python", "\n".join(body), f"{rel}:{start + 1}", run))
        elif lang in SHELL_LANGS:
            out += _shell_lines(body, rel, start + 1)
        i = j + 1
    # inline code spans in prose (they may wrap over lines)
    text = "\n".join(line for _, line in prose)
    for span in re.finditer(r"`([^`]+)`", text):
        cmd = " ".join(span.group(1).split())
        line_no = prose[text[: span.start()].count("\n")][0]
        if _is_command(cmd):
            out.append(Snippet("shell", cmd, f"{rel}:{line_no}", inline=True))
        elif re.fullmatch(r"benchmarks/results/[\w.*/-]+", cmd):
            out.append(Snippet("file", cmd, f"{rel}:{line_no}", inline=True))
        elif str(rel) in RESULTS_BY_NAME and re.fullmatch(r"[\w*-]+\.(json|png)", cmd):
            # on these pages a bare file name is a results file
            out.append(Snippet("file", f"benchmarks/results/{cmd}", f"{rel}:{line_no}", inline=True))
    return out


def _shell_lines(body: list[str], rel: Path, first: int) -> list[Snippet]:
    out = []
    buf, at = "", first
    for k, line in enumerate(body):
        if not buf:
            at = first + k
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        cmd = buf.strip()
        buf = ""
        if cmd and _is_command(_strip_comment(cmd)):
            out.append(Snippet("shell", _strip_comment(cmd), f"{rel}:{at}"))
    return out


def _strip_comment(cmd: str) -> str:
    """The command without its trailing ``# comment`` (quotes respected)."""
    try:
        return shlex.join(shlex.split(cmd, comments=True))
    except ValueError:
        return cmd


_COMMAND_START = re.compile(
    r"^(embedlab\s|python3?\s+-m\s+embedlab\b|torchrun\s.*-m\s+embedlab\b|"
    r"(\S+/)?python3?\s+benchmarks/|bash\s+benchmarks/|(\S+=\S+\s+)*bash\s+benchmarks/|make\s+\w)"
)


def _is_command(cmd: str) -> bool:
    return bool(_COMMAND_START.match(cmd.strip()))


# ---------------------------------------------------------------- embedlab commands


def _click_root():
    import typer.main

    from embedlab.cli.main import app

    return typer.main.get_command(app)


def _click():
    """The click that builds the CLI: Typer >= 0.20 vendors its own copy (``typer._click``)."""
    try:
        import typer._click as click
    except ImportError:  # older Typer on the public click
        import click
    return click


def check_embedlab(argv: list[str], root_cmd=None, elided: bool = False) -> str | None:
    """Parse ``argv`` (the words after ``embedlab``) with the CLI's click parser; return the
    problem, or None. ``elided``: the command is a mention (options left out), so missing
    required options are not reported. Nothing is invoked: only the parser and the values' type conversion run
    (no callbacks; paths are not required to exist)."""
    click = _click()
    root_cmd = root_cmd or _click_root()
    words = [w.strip("[]") for w in argv]  # usage syntax: [--quick] [--only NAME ...]
    words = [w for w in words if w]
    elided = elided or ELLIPSIS in words
    cmd, path = root_cmd, ["embedlab"]
    while hasattr(cmd, "list_commands"):  # a group
        if not words:
            return None  # `embedlab shard` alone prints the group's help
        name = words[0]
        if _is_placeholder(name):
            return None  # `embedlab COMMAND --help`
        if name.startswith("-"):
            if name in ("--help", "-h"):
                return None
            return f"option {name!r} before a command of {' '.join(path)!r}"
        sub = cmd.get_command(click.Context(cmd), name)
        if sub is None:
            return f"no command {' '.join(path + [name])!r}"
        cmd, path, words = sub, path + [name], words[1:]
    where = " ".join(path)
    if "--help" in words:
        return None
    ctx = click.Context(cmd, info_name=where)
    parser = cmd.make_parser(ctx)
    try:
        opts, extra, _order = parser.parse_args(args=list(words))
    except click.exceptions.UsageError as e:
        return f"{where}: {e.format_message()}"
    extra = [w for w in extra if not _is_placeholder(w)]
    if extra:
        return f"{where}: unexpected argument(s) {extra}"
    for param in cmd.params:
        value = opts.get(param.name)
        label = param.opts[0] if param.opts else param.name
        if value is None:
            if param.required and not elided:
                return f"{where}: missing {label}"
            continue
        if _is_path(param) or _has_placeholder(value):
            continue
        try:
            _coerce(param, value, ctx)
        except click.exceptions.BadParameter as e:
            return f"{where}: {label}: {e.format_message()}"
    return None


def _is_path(param) -> bool:
    import pathlib

    desc = getattr(param, "type_descriptor", None)
    if desc is not None:
        ann = desc.annotation
        return isinstance(ann, type) and issubclass(ann, pathlib.PurePath)
    return type(getattr(param, "type", None)).__name__ == "Path"


def _coerce(param, value, ctx):
    """The parameter's type conversion alone (Typer's runtime coercion, or click's type)."""
    if hasattr(param, "get_runtime_param"):
        return param.get_runtime_param().coerce(value, param=param, ctx=ctx)
    return param.type_cast_value(ctx, value)


def _is_placeholder(word: str) -> bool:
    """``...``, an upper-case name (``N``, ``DIR``), a shell variable or ``<path>``."""
    return word == ELLIPSIS or bool(re.fullmatch(r"[A-Z][A-Z_]*", word)) or "$" in word or "<" in word


def _has_placeholder(value) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, str) and _is_placeholder(v) for v in values)


# ---------------------------------------------------------------- other commands


def _argparse_options(script: Path, root: Path = ROOT) -> set[str] | None:
    """The option strings a script's argparse parser declares (``add_argument("--x", ...)``),
    read from its source and from the repository modules it imports with ``from benchmarks.m
    import ...`` (shared option helpers), followed recursively; None when the script has no
    argparse parser."""
    found: set[str] = set()
    uses_argparse = False
    todo, seen = [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                local = root / (node.module.replace(".", "/") + ".py")
                if node.module.split(".")[0] == "benchmarks" and local.is_file():
                    todo.append(local)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "ArgumentParser" and path == script:
                    uses_argparse = True
                if node.func.attr == "add_argument":
                    for arg in node.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                            found.add(arg.value)
    return found if uses_argparse else None


def check_script(words: list[str], root: Path = ROOT) -> str | None:
    """``python benchmarks/x.py --opt ...`` or ``bash benchmarks/x.sh``: exists, options known."""
    script = root / words[1]
    if not script.is_file():
        return f"no file {words[1]}"
    if script.suffix != ".py":
        return None
    declared = _argparse_options(script, root)
    if declared is None:
        return None
    for w in words[2:]:
        opt = w.split("=", 1)[0]
        if opt.startswith("--") and opt not in declared and opt != "--help":
            return f"{words[1]}: unknown option {opt}"
    return None


def check_make(words: list[str], root: Path = ROOT) -> str | None:
    """``make TARGET``: the Makefile has the target."""
    makefile = (root / "Makefile").read_text()
    for target in words[1:]:
        if "=" in target or target.startswith("-"):
            continue
        if not re.search(rf"^{re.escape(target)}\s*:", makefile, re.M):
            return f"Makefile has no target {target!r}"
    return None


def check_shell(cmd: str, root_cmd=None, root: Path = ROOT, elided: bool = False) -> str | None:
    """Route one shell command to its checker."""
    try:
        words = shlex.split(cmd)
    except ValueError as e:
        return f"cannot split: {e}"
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):  # OUT=... bash ...
        words = words[1:]
    if words[0] == "make":
        return check_make(words, root)
    if "embedlab" in words and (words[0] in ("embedlab", "torchrun") or words[1] == "-m"):
        return check_embedlab(words[words.index("embedlab") + 1 :], root_cmd, elided)
    return check_script(words, root)


def check_file(path: str, root: Path = ROOT) -> str | None:
    """A results file (or glob, ``pu_validation_s*.json``) named in the text exists."""
    if not any(root.glob(path)):
        return f"no file {path}"
    return None


# ---------------------------------------------------------------- Python snippets


def check_python(snippet: Snippet) -> str | None:
    """Compile the block; resolve its embedlab imports and ``el.X`` names; run it if marked."""
    try:
        tree = ast.parse(snippet.text)
    except SyntaxError as e:
        return f"syntax error: {e.msg} (line {e.lineno})"
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("embedlab"):
            try:
                module = importlib.import_module(node.module)
            except ImportError as e:
                return f"import {node.module}: {e}"
            for name in node.names:
                try:
                    getattr(module, name.name)
                except AttributeError:
                    try:
                        importlib.import_module(f"{node.module}.{name.name}")
                    except ImportError:
                        return f"{node.module} has no {name.name!r}"
                except Exception as e:  # a lazy export whose module fails to import
                    return f"{node.module}.{name.name}: {type(e).__name__}: {e}"
        elif isinstance(node, ast.Import):
            for name in node.names:
                if name.name.split(".")[0] == "embedlab":
                    try:
                        importlib.import_module(name.name)
                    except ImportError as e:
                        return f"import {name.name}: {e}"
                    aliases[name.asname or name.name] = name.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            module = importlib.import_module(aliases[node.value.id])
            try:
                getattr(module, node.attr)
            except AttributeError:
                return f"{aliases[node.value.id]} has no {node.attr!r}"
            except Exception as e:  # a lazy export whose module fails to import
                return f"{aliases[node.value.id]}.{node.attr}: {type(e).__name__}: {e}"
    if snippet.run:
        return _run_python(snippet)
    return None


def _run_python(snippet: Snippet) -> str | None:
    """Execute a snippet in a fresh directory, its caches there too (never the user's)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        _chdir(tmp),
        _env("EMBEDLAB_CACHE", os.path.join(tmp, ".cache")),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            exec(compile(snippet.text, snippet.where, "exec"), {"__name__": "__docs__", "tmp": tmp})
        except Exception as e:  # a snippet that fails is reported, whatever it raised
            return f"running it raised {type(e).__name__}: {e}"
    return None


@contextlib.contextmanager
def _env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextlib.contextmanager
def _chdir(path: str):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# ---------------------------------------------------------------- entry point


def all_snippets(root: Path = ROOT) -> list[Snippet]:
    """Every checked snippet of README.md and docs/."""
    return [s for f in doc_files(root) for s in extract(f, root)]


def problems(snippets: list[Snippet] | None = None, run: bool = True) -> list[str]:
    """One line per snippet that fails its check."""
    snippets = all_snippets() if snippets is None else snippets
    root_cmd = _click_root()
    out = []
    for s in snippets:
        if s.kind == "shell":
            err = check_shell(s.text, root_cmd, elided=s.inline)
        elif s.kind == "file":
            err = check_file(s.text)
        elif s.kind == "fence":
            err = s.text
        else:
            err = check_python(s if run else Snippet(s.kind, s.text, s.where, False))
        if err:
            out.append(f"{s.where}: {err}\n    {s.text.splitlines()[0] if s.text else ''}")
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    n = len(all_snippets())
    print(f"{n} snippets checked, {len(found)} problem(s)", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
