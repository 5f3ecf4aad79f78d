"""The primal and its adjoint side by side: `adjoint explain`.

Generated code heads each group of lines with a `# line N: <source>` comment
(`# other.py, line N: ...` for code inlined from another file), marks its
sweeps with `# --- forward ---` / `# --- backward ---`, and lists what the
backward sweep keeps from the forward one (`# reads from the forward sweep: a,
b`). Those comments are the whole map: `explain` reads them back and links
every source line to the generated lines that compute it (forward) and reverse
it (backward).

    from adjoint.explain import explain_text
    print(explain_text(loss, args=(0.5, 1.5, 0.1, 1.0), wrt=(0, 2)))

      11      z = w * x + b
            fwd  8 | z = w * x + b
            bwd 22 | w_bar = z_bar * x
            bwd 23 | b_bar = z_bar
      12      y = 1.0 / (1.0 + np.exp(-z))
      ...

`explain_html` writes the same as one self-contained page (inline CSS, a small
syntax highlighter written here, a few lines of JavaScript; nothing fetched):
each source line links to its generated lines and back, hovering or clicking a
line lights up its partners, and the values the backward sweep reads from the
forward sweep are marked where they are made and where they are read.
"""
from __future__ import annotations

import ast
import functools
import html
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from adjoint.display import SourceText, highlight

# ---------------------------------------------------------------- the map

_LINE_COMMENT = re.compile(r"^(?P<ind>\s*)# (?:(?P<file>[^,#]+\.py), )?line (?P<line>\d+): ")
_SECTION = re.compile(r"^\s*# --- (?P<sweep>[\w ]+) ---\s*$")
_READS = re.compile(r"^\s*# reads from the forward sweep: (?P<names>.*)$")
_DEF = re.compile(r"^def (?P<name>\w+)\(")
_PUSH = re.compile(r"^\s*(\w+)\.append\((.*)\)\s*$")
_POP = re.compile(r"^\s*([\w, ]+?)\s*=\s*(\w+)\.pop\(\)")
_ASSIGNED = re.compile(r"^\s*(?P<targets>[\w, ]+?)\s*(?:\+|-|\*|/)?=(?!=)")


@dataclass
class GenLine:
    """One line of the generated module, and where it comes from."""

    number: int  # 1-based, in the generated module
    text: str
    key: str | None = None  # the source line it comes from ("12", or "helper.py:3")
    sweep: str | None = None  # "forward", "backward", or None outside a gradient body
    function: str | None = None  # the generated function it is in
    header: bool = False  # a `# line N: ...` comment
    residuals: tuple[str, ...] = ()  # the names its function's backward sweep reads


@dataclass
class SrcLine:
    key: str
    line: int
    text: str


@dataclass
class SrcBlock:
    """A source function shown in the primal column: the differentiated one, or a
    helper whose lines were inlined into the gradient."""

    title: str
    filename: str
    lines: list[SrcLine]


@dataclass
class Explanation:
    """A primal function, its generated module, and the line map between them."""

    name: str
    filename: str
    wrt: tuple[str, ...]
    blocks: list[SrcBlock]
    generated: list[GenLine]
    source: str  # the generated module's text
    residuals: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per function

    def partners(self, key: str) -> list[GenLine]:
        """The generated lines (headers excluded) that come from source line `key`."""
        return [g for g in self.generated if g.key == key and not g.header]

    def keeps(self, key: str) -> list[str]:
        """Values the forward lines of `key` make that the backward sweep reads: names,
        and `a, b (on _tape)` for values pushed on a loop's tape every iteration."""
        out = []
        for g in self.partners(key):
            if g.sweep != "forward" or not g.residuals:
                continue
            push = _PUSH.match(g.text)
            if push and push[1] in g.residuals:
                item = f"{push[2].strip().strip('()')} (on {push[1]})"
                if item not in out:
                    out.append(item)
                continue
            for name in assigned_names(g.text):
                if (name in g.residuals and name not in out
                        and self.made.get((g.function, name)) == g.number):
                    out.append(name)
        return out

    def _repr_html_(self) -> str:
        """In a notebook: the explain page in a frame of its own, so its styles stay in it."""
        page = render_html(self)
        return (f'<iframe srcdoc="{html.escape(page, quote=True)}" title="adjoint explain: '
                f'{html.escape(self.name)}" style="width:100%;height:560px;border:1px solid '
                f'#e4e2da;border-radius:4px"></iframe>')

    def __repr__(self) -> str:
        return f"<Explanation of {self.name} with respect to ({', '.join(self.wrt)})>"

    @functools.cached_property
    def made(self) -> dict[tuple[str, str], int]:
        """(function, residual) -> the forward line that last assigns it: the value the
        backward sweep reads (a name can be assigned more than once)."""
        out = {}
        for g in self.generated:
            if g.sweep == "forward" and g.residuals and not _PUSH.match(g.text):
                for name in assigned_names(g.text):
                    if name in g.residuals:
                        out[(g.function, name)] = g.number
        return out


def assigned_names(line: str) -> list[str]:
    """The plain names a generated line assigns (`a, b = ...`, `a += ...`), and the
    tape a line appends to."""
    m = _ASSIGNED.match(line)
    names = [n.strip() for n in m["targets"].split(",")] if m else []
    push = re.match(r"^\s*(\w+)\.append\(", line)
    if push:
        names.append(push[1])
    return [n for n in names if n.isidentifier()]


_FOR = re.compile(r"^\s*for (?P<targets>[\w, ]+) in (?P<iter>.*):\s*$")


def _split_top(text: str) -> list[str]:
    """`a, f(b, c), d` -> ["a", "f(b, c)", "d"]: commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return parts + ([cur.strip()] if cur.strip() else [])


def tape_reads(line: str, saved: set[str]) -> set[str]:
    """Names a backward line binds to values kept by the forward sweep: `a, b =
    _tape.pop()`, the items of `for i, s in zip(reversed(_range), reversed(_tape))`
    and what is taken out of them (`a = s[0]`). `saved`: the forward sweep's
    residuals and the names already known to hold saved values."""
    pop = _POP.match(line)
    if pop and pop[2] in saved:
        return {n.strip() for n in pop[1].split(",") if n.strip() not in ("", "_")}
    loop = _FOR.match(line)
    if loop:
        targets = [t.strip() for t in loop["targets"].split(",")]
        it = loop["iter"].strip()
        sources = _split_top(it[4:-1]) if it.startswith("zip(") and it.endswith(")") else [it]
        out = set()
        for target, source in zip(targets, sources):
            inner = re.fullmatch(r"reversed\((\w+)\)", source) or re.fullmatch(r"(\w+)", source)
            if inner and inner[1] in saved and not inner[1].startswith("_range"):
                out.add(target)
        return out
    m = re.match(r"^\s*(?P<targets>[\w, ]+?)\s*=\s*(?P<src>\w+)(?:\[[^\]]*\])?\s*$", line)
    if m and m["src"] in saved:
        return {n.strip() for n in m["targets"].split(",") if n.strip() not in ("", "_")}
    return set()


def _key(file: str | None, line: int, main_file: str) -> str:
    if file is None or file == os.path.basename(main_file):
        return str(line)
    return f"{file}:{line}"


def parse_generated(text: str, main_file: str) -> tuple[list[GenLine], dict]:
    """Read the map back from the comments of a generated module."""
    out: list[GenLine] = []
    residuals: dict[str, tuple[str, ...]] = {}
    function = sweep = None
    stack: list[tuple[int, str]] = []  # (indent of a `# line` comment, its key)
    for number, line in enumerate(text.splitlines(), 1):
        g = GenLine(number, line, function=function, sweep=sweep)
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            out.append(g)
            continue
        m = _DEF.match(line)
        if m:
            function, stack = m["name"], []
            sweep = "backward" if function.endswith("_bwd") else "forward"
            g.function, g.sweep = function, None
            out.append(g)
            continue
        if indent == 0:  # module level: header, imports, pasted helpers
            function = sweep = None
            g.function = g.sweep = None
            stack = []
            out.append(g)
            continue
        m = _SECTION.match(line)
        if m:
            sweep, stack = m["sweep"], []
            g.sweep = sweep
            out.append(g)
            continue
        if _READS.match(line):
            residuals[function] = tuple(n.strip() for n in _READS.match(line)["names"].split(",")
                                        if n.strip())
            out.append(g)
            continue
        while stack and stack[-1][0] > indent:
            stack.pop()
        m = _LINE_COMMENT.match(line)
        if m:
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, _key(m["file"], int(m["line"]), main_file)))
            g.header = True
        elif indent == 4 and stripped.startswith("return"):
            stack = []  # the gradient's own return comes from no source line
        elif stripped.startswith('"""') and out and _DEF.match(out[-1].text):
            stack = []  # a docstring
        g.key = stack[-1][1] if stack else None
        out.append(g)
    for g in out:
        g.residuals = residuals.get(g.function, ())
    return out, residuals


def _function_spans(text: str) -> list[tuple[int, int, str]]:
    """(first line, last line, name) of every function in a file, decorators included."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            spans.append((first, node.end_lineno or node.lineno, node.name))
    return spans


def _enclosing(spans, line: int):
    inside = [s for s in spans if s[0] <= line <= s[1]]
    return min(inside, key=lambda s: s[1] - s[0]) if inside else None


def _ir_files(f: Callable) -> dict[str, str]:
    """basename -> full path of every file the lowered function has code from."""
    from adjoint.frontend.lower import lower_function
    from adjoint.ir.core import walk_ops
    files = {}
    try:
        fn = lower_function(f)
    except Exception:  # the generated source was made already; the map is a nicety
        return files
    for op in walk_ops(fn.body):
        loc = getattr(op, "loc", None)
        if loc is not None and loc.filename:
            files.setdefault(os.path.basename(loc.filename), loc.filename)
    return files


def explain(f: Callable, args=None, wrt=0, checkpoint=None) -> Explanation:
    """The generated gradient of `f` (specialised on `args` when given) with its map."""
    import inspect

    from adjoint.api import source
    from adjoint.frontend.source import parse_function, unwrap

    f = unwrap(f)
    text = source(f, wrt, args=tuple(args) if args is not None else None,
                  checkpoint=checkpoint)
    parsed = parse_function(f)
    main_file = parsed.filename
    generated, residuals = parse_generated(text, main_file)

    sig = list(inspect.signature(f).parameters)
    items = wrt if isinstance(wrt, tuple) else (wrt,)
    wrt_names = tuple(sig[w] if isinstance(w, int) else w for w in items)

    files = {os.path.basename(main_file): main_file}
    files.update({k: v for k, v in _ir_files(f).items() if k not in files})
    texts: dict[str, list[str]] = {}

    def file_lines(path: str) -> list[str]:
        if path not in texts:
            if path == main_file:
                texts[path] = [ln.rstrip("\n") for ln in parsed.lines]
            else:
                try:
                    with open(path, encoding="utf-8") as fh:
                        texts[path] = fh.read().splitlines()
                except OSError:
                    texts[path] = []
        return texts[path]

    # the differentiated function first, then each helper in order of first use
    blocks: list[SrcBlock] = []
    shown: set[tuple[str, int, int]] = set()

    def add_block(path: str, span, title: str) -> None:
        if (path, span[0], span[1]) in shown:
            return
        shown.add((path, span[0], span[1]))
        lines = file_lines(path)
        base = os.path.basename(path)
        rows = [SrcLine(_key(base, n, main_file), n, lines[n - 1] if n <= len(lines) else "")
                for n in range(span[0], span[1] + 1)]
        blocks.append(SrcBlock(title, path, rows))

    first = parsed.node.lineno
    main_spans = _function_spans("\n".join(file_lines(main_file)))
    span = _enclosing(main_spans, first) or (first, first, f.__name__)
    add_block(main_file, span, f"{f.__name__}  ({_short(main_file)})")
    keyed = {row.key for b in blocks for row in b.lines}
    for g in generated:
        if g.key is None or g.key in keyed:
            continue
        base, _, n = g.key.rpartition(":")
        path = files.get(base, main_file) if base else main_file
        lines = file_lines(path)
        inner = _enclosing(_function_spans("\n".join(lines)), int(n))
        if inner is None:
            inner = (int(n), int(n), "")
        add_block(path, inner, f"{inner[2] or 'line ' + n}  ({_short(path)}, inlined)")
        keyed = {row.key for b in blocks for row in b.lines}
    return Explanation(f.__name__, main_file, wrt_names, blocks, generated, text, residuals)


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


# ---------------------------------------------------------------- text


def explain_text(f: Callable, args=None, wrt=0, checkpoint=None, layout: str = "grouped",
                 width: int | None = None) -> str:
    """The map as plain text. `layout="grouped"`: each source line followed by the
    generated lines that come from it (forward, then backward); `layout="columns"`:
    the source on the left, the whole generated module on the right, each
    generated line tagged with its source line."""
    ex = explain(f, args=args, wrt=wrt, checkpoint=checkpoint)
    if layout == "columns":
        return render_columns(ex, width)
    if layout != "grouped":
        raise ValueError(f"layout must be 'grouped' or 'columns', not {layout!r}")
    return render_grouped(ex)


def _title(ex: Explanation) -> str:
    fns = [g.function for g in ex.generated if g.function and _DEF.match(g.text)]
    main = fns[0] if fns else "?"
    return (f"{ex.name} -> {main}: the gradient with respect to ({', '.join(ex.wrt)})")


def render_grouped(ex: Explanation) -> str:
    main = next((g.function for g in ex.generated if g.function), None)
    num_w = len(str(len(ex.generated)))
    out = [_title(ex), ""]
    for block in ex.blocks:
        out.append(f"# {block.title}")
        src_w = len(str(block.lines[-1].line)) if block.lines else 1
        for row in block.lines:
            out.append(f"  {row.line:>{src_w}}  {row.text.rstrip()}")
            for g in ex.partners(row.key):
                where = "" if g.function == main else f"   [{g.function}]"
                tag = {"forward": "fwd", "backward": "bwd"}.get(g.sweep or "", "   ")
                out.append(f"  {'':>{src_w}}    {tag} {g.number:>{num_w}} | "
                           f"{_body_text(g.text)}{where}")
            keeps = ex.keeps(row.key)
            if keeps:
                out.append(f"  {'':>{src_w}}    kept for the backward sweep: {', '.join(keeps)}")
        out.append("")
    others = [g for g in ex.generated if g.key is None and g.function and g.text.strip()
              and not _DEF.match(g.text) and not g.text.strip().startswith(("#", '"""'))]
    if others:
        out.append("# generated lines of no source line (the gradient's own bookkeeping)")
        for g in others:
            out.append(f"    {g.number:>{num_w}} | {_body_text(g.text)}")
        out.append("")
    for fn, names in ex.residuals.items():
        if names:
            out.append(f"{fn} reads from its forward sweep: {', '.join(names)}")
    return "\n".join(out).rstrip() + "\n"


def _body_text(line: str) -> str:
    """A generated line without the function body's own indentation (loops keep theirs)."""
    return line[4:] if line.startswith("    ") else line.strip()


def render_columns(ex: Explanation, width: int | None = None) -> str:
    left = []
    for block in ex.blocks:
        left.append(f"# {block.title}")
        left.extend(f"{row.line:>4}  {row.text.rstrip()}" for row in block.lines)
        left.append("")
    lw = min(max((len(s) for s in left), default=0), width or 64)
    right = []
    for g in ex.generated:
        tag = f"[{g.key}]" if g.key and not g.header else ""
        right.append(f"{g.number:>4} {tag:>8}  {g.text}")
    out = [_title(ex), ""]
    for k in range(max(len(left), len(right))):
        a = left[k] if k < len(left) else ""
        a = a if len(a) <= lw else a[:lw - 1] + "~"
        b = right[k] if k < len(right) else ""
        out.append(f"{a:<{lw}} | {b}".rstrip())
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- html

_CSS = """
:root { --bg:#fbfbf8; --fg:#1d2021; --muted:#7c7c74; --line:#e4e2da; --hl:#fff1a8;
        --pin:#ffd75e; --fwd:#2f6fb0; --bwd:#b0452f; --res:#e9f3e0; --res-b:#5c9a3c; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
header { padding: 10px 18px 8px; border-bottom: 1px solid var(--line); }
header h1 { font-size: 17px; margin: 0 0 4px; font-weight: 600; }
header h1 code { font-size: 16px; }
.legend { color: var(--muted); font-size: 12.5px; margin: 0; }
.legend span { margin-right: 14px; white-space: nowrap; }
.sw { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px;
      vertical-align:-1px; }
main { display: grid; grid-template-columns: minmax(0, 5fr) minmax(0, 7fr); gap: 0;
       height: calc(100vh - 78px); }
.col { overflow: auto; border-right: 1px solid var(--line); }
.col h2 { position: sticky; top: 0; z-index: 1; margin: 0; padding: 6px 12px;
          font-size: 12px; font-weight: 600; letter-spacing: .04em; text-transform: uppercase;
          color: var(--muted); background: var(--bg); border-bottom: 1px solid var(--line); }
.code { font: 12.5px/1.5 ui-monospace, "SF Mono", Menlo, Consolas, "DejaVu Sans Mono",
        monospace; padding: 4px 0 40px; }
.blk { padding: 8px 12px 2px; color: var(--muted); font: 600 12px system-ui, sans-serif; }
.ln { display: flex; align-items: baseline; padding: 0 8px 0 0; white-space: pre;
      border-left: 3px solid transparent; cursor: default; }
.ln[data-key] { cursor: pointer; }
.ln .no { flex: none; width: 3.2em; text-align: right; padding-right: 10px; color: #b1aea3;
          user-select: none; }
.ln .tx { flex: 1 1 auto; }
.ln .to { flex: none; width: 7.5em; padding-right: 10px; text-align: right; font-size: 11px;
          user-select: none; white-space: normal; }
.ln .to a { text-decoration: none; margin-left: 2px; padding: 0 3px; border-radius: 3px;
            white-space: nowrap; }
.ln .to a.fwd { color: var(--fwd); background: #e7eef7; }
.ln .to a.bwd { color: var(--bwd); background: #f7e9e6; }
.ln .keeps { color: var(--res-b); margin-left: 12px; font: 11px system-ui, sans-serif; }
.gen .ln.fwd { border-left-color: #c4d6ea; }
.gen .ln.bwd { border-left-color: #ecc8c0; }
.gen .ln .from { flex: none; width: 4.2em; font-size: 11px; text-align: right;
                 padding-right: 8px; text-decoration: none; color: var(--muted); }
.gen .ln.hdr .tx { color: var(--muted); }
.ln.hl { background: var(--hl); }
.ln.pin { background: var(--pin); }
.ln:target { background: var(--pin); }
.sec { padding: 6px 12px 2px 3.6em; font: 600 11.5px system-ui, sans-serif; }
.sec.forward { color: var(--fwd); } .sec.backward { color: var(--bwd); }
.res { background: var(--res); border-bottom: 1.5px solid var(--res-b); border-radius: 2px; }
.res-def { font-weight: 700; }
.res.lit { background: #b8e29c; }
.k { color: #8f3f9c; font-weight: 600; } .b { color: #6d5a00; }
.f { color: #1a5fb4; font-weight: 600; }
.s { color: #2c7a39; } .n { color: #b35900; } .c { color: #8a8a80; font-style: italic; }
.m { color: #0e7c86; } .a { color: #0e7c86; } .adj { color: var(--bwd); } .tmp { color: #55606e; }
"""

_JS = """
(function () {
  var pinned = null;
  function all(key) { return document.querySelectorAll('.ln[data-key="' + key + '"]'); }
  function mark(key, cls, on) {
    all(key).forEach(function (el) { el.classList.toggle(cls, on); });
  }
  document.querySelectorAll('.ln[data-key]').forEach(function (el) {
    var key = el.getAttribute('data-key');
    el.addEventListener('mouseenter', function () { mark(key, 'hl', true); });
    el.addEventListener('mouseleave', function () { mark(key, 'hl', false); });
    el.addEventListener('click', function (ev) {
      if (ev.target.tagName === 'A') return;
      if (pinned !== null) mark(pinned, 'pin', false);
      pinned = (pinned === key) ? null : key;
      if (pinned === null) return;
      mark(key, 'pin', true);
      var other = el.closest('.gen') ? '.src' : '.gen';
      var partner = document.querySelector(other + ' .ln[data-key="' + key + '"]');
      if (partner) partner.scrollIntoView({block: 'nearest', behavior: 'smooth'});
    });
  });
  var target = location.hash && document.getElementById(location.hash.slice(1));
  if (target && target.hasAttribute('data-key')) target.click();
  document.querySelectorAll('.res').forEach(function (el) {
    var name = el.getAttribute('data-res');
    var same = document.querySelectorAll('.res[data-res="' + name + '"]');
    el.addEventListener('mouseenter', function () {
      same.forEach(function (o) { o.classList.add('lit'); }); });
    el.addEventListener('mouseleave', function () {
      same.forEach(function (o) { o.classList.remove('lit'); }); });
  });
})();
"""


_SHORT = {"forward": "fwd", "backward": "bwd"}


def _anchor(prefix: str, key: str) -> str:
    return prefix + re.sub(r"[^\w]", "_", key)


def render_html(ex: Explanation, title: str | None = None) -> str:
    esc = html.escape
    first_def = next((g for g in ex.generated if _DEF.match(g.text)), None)
    gen_name = first_def.function if first_def else "gradient"
    title = title or f"adjoint explain: {ex.name}"
    residual_names = sorted({n for names in ex.residuals.values() for n in names})

    # ---- the primal column
    src = []
    for block in ex.blocks:
        src.append(f'<div class="blk">{esc(block.title)}</div>')
        state = None
        for row in block.lines:
            body, state = highlight(row.text.rstrip(), state)
            partners = ex.partners(row.key)
            links = []
            for sweep in ("forward", "backward"):
                nums = [g.number for g in partners if g.sweep == sweep]
                for a, b in _runs(nums):
                    label = str(a) if a == b else f"{a}&ndash;{b}"
                    links.append(f'<a class="{_SHORT[sweep]}" href="#g{a}" title="{sweep} sweep, '
                                 f'generated line{"s" if a != b else ""} {a}'
                                 f'{"-" + str(b) if a != b else ""}">{label}</a>')
            other = [g.number for g in partners if g.sweep not in ("forward", "backward")]
            for a, b in _runs(other):
                links.append(f'<a href="#g{a}">{a if a == b else f"{a}&ndash;{b}"}</a>')
            keeps = ex.keeps(row.key)
            extra = (f'<span class="keeps" title="made here, read by the backward sweep">'
                     f'keeps {esc(", ".join(keeps))}</span>') if keeps else ""
            key_attr = f' data-key="{esc(row.key)}"' if partners else ""
            src.append(f'<div class="ln" id="{_anchor("s", row.key)}"{key_attr}>'
                       f'<span class="no">{row.line}</span><span class="to">{"".join(links)}'
                       f'</span><span class="tx">{body}{extra}</span></div>')

    # ---- the generated column
    gen = []
    state = None
    popped: dict[str, set[str]] = {}
    for g in ex.generated:
        m = _SECTION.match(g.text)
        if m:
            gen.append(f'<div class="sec {esc(m["sweep"])}" id="g{g.number}">'
                       f'{esc(g.text.strip())}</div>')
            continue
        marks, defined = set(), set()
        if g.sweep in ("forward", "backward") and g.residuals:
            marks = set(g.residuals)
            push = _PUSH.match(g.text)
            if g.sweep == "forward" and push and push[1] in marks:
                defined = set(re.findall(r"[A-Za-z_]\w*", push[2]))  # saved per iteration
                marks |= defined
            elif g.sweep == "forward":
                defined = {n for n in assigned_names(g.text)
                           if ex.made.get((g.function, n)) == g.number}
            else:  # values read back from a tape
                popped.setdefault(g.function, set()).update(
                    tape_reads(g.text, marks | popped.get(g.function, set())))
            if g.sweep == "backward":
                marks |= popped.get(g.function, set())
        body, state = highlight(g.text, state, marks=marks, defined=defined)
        cls = {"forward": " fwd", "backward": " bwd"}.get(g.sweep or "", "")
        cls += " hdr" if g.header else ""
        if g.key:
            src_line = g.key.rpartition(":")[2]
            where = f'<a class="from" href="#{_anchor("s", g.key)}" ' \
                    f'title="from source line {esc(g.key)}">&larr;{esc(src_line)}</a>'
            key_attr = f' data-key="{esc(g.key)}"'
        else:
            where, key_attr = '<span class="from"></span>', ""
        gen.append(f'<div class="ln{cls}" id="g{g.number}"{key_attr}>'
                   f'<span class="no">{g.number}</span>{where}<span class="tx">{body}</span></div>')

    legend = (
        '<p class="legend">'
        '<span><i class="sw" style="background:#c4d6ea"></i>forward sweep</span>'
        '<span><i class="sw" style="background:#ecc8c0"></i>backward sweep (the adjoint)</span>'
        '<span><i class="sw" style="background:#e9f3e0;border:1px solid #5c9a3c"></i>'
        f'read by the backward sweep from the forward sweep'
        f'{": " + esc(", ".join(residual_names)) if residual_names else ""}</span>'
        '<span>hover or click a line to light up its partners</span></p>')
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1><code>{esc(ex.name)}</code> and its adjoint <code>{esc(gen_name)}</code>
 &mdash; the gradient with respect to ({esc(", ".join(ex.wrt))})</h1>
{legend}
</header>
<main>
<section class="col src" aria-label="primal source">
<h2>primal &middot; {esc(_short(ex.filename))}</h2>
<div class="code">
{chr(10).join(src)}
</div>
</section>
<section class="col gen" aria-label="generated adjoint">
<h2>generated &middot; {esc(gen_name)}</h2>
<div class="code">
{chr(10).join(gen)}
</div>
</section>
</main>
<script>{_JS}</script>
</body>
</html>
"""


def explain_html(f: Callable, args=None, wrt=0, checkpoint=None, title: str | None = None) -> str:
    """The map as one self-contained HTML page (no network, no external files)."""
    return render_html(explain(f, args=args, wrt=wrt, checkpoint=checkpoint), title)


__all__ = ["explain", "explain_text", "explain_html", "render_grouped", "render_columns",
           "render_html", "parse_generated", "tape_reads", "highlight", "Explanation",
           "SourceText"]
