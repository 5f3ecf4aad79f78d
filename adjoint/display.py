"""Generated source as HTML: Python highlighted with spans whose classes name the
role of each token (keyword, builtin, cotangent `_bar`, temporary `_t`), for the
explain page and for notebooks, where `SourceText` shows itself highlighted."""
from __future__ import annotations

import builtins
import html
import keyword
import re


_TOKEN = re.compile(r"""
    (?P<com>\#.*)
  | (?P<str>[rRbBuUfF]{0,2}(?:\"\"\"|\'\'\'|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'))
  | (?P<num>(?:\b\d[\d_]*\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)j?)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<op>[^\s\w])
  | (?P<ws>\s+)
""", re.VERBOSE)


_BUILTINS = set(dir(builtins))


_KEYWORDS = set(keyword.kwlist)


def highlight(line: str, state: str | None = None, marks=None,
              defined=()) -> tuple[str, str | None]:
    """One line of Python as HTML spans; `state` is the open triple quote a string
    continues from the line before (and the returned state, for the next line).
    Names in `marks` are wrapped as values read from the forward sweep; names in
    `defined` additionally as the line that makes them."""
    out = []
    pos = 0
    if state:  # inside a triple-quoted string
        end = line.find(state)
        if end < 0:
            return f'<span class="s">{html.escape(line)}</span>', state
        out.append(f'<span class="s">{html.escape(line[:end + 3])}</span>')
        pos, state = end + 3, None
    prev = ""
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if m is None:  # pragma: no cover - the pattern matches any character
            out.append(html.escape(line[pos]))
            pos += 1
            continue
        kind, tok = m.lastgroup, m[0]
        pos = m.end()
        text = html.escape(tok)
        if kind == "str" and tok.lstrip("rRbBuUfF") in ('"""', "'''"):
            quote = tok.lstrip("rRbBuUfF")
            end = line.find(quote, pos)
            if end < 0:
                out.append(f'<span class="s">{html.escape(line[m.start():])}</span>')
                return "".join(out), quote
            out.append(f'<span class="s">{html.escape(line[m.start():end + 3])}</span>')
            pos = end + 3
            prev = "str"
            continue
        if kind == "com":
            out.append(f'<span class="c">{text}</span>')
        elif kind == "str":
            out.append(f'<span class="s">{text}</span>')
        elif kind == "num":
            out.append(f'<span class="n">{text}</span>')
        elif kind == "name":
            cls = _name_class(tok, prev)
            if marks and tok in marks and prev != ".":
                extra = " res-def" if tok in defined else ""
                title = ("made here, kept for the backward sweep" if extra else
                         "read from the forward sweep")
                out.append(f'<span class="res{extra} {cls}" data-res="{text}" '
                           f'title="{title}">{text}</span>')
            elif cls:
                out.append(f'<span class="{cls}">{text}</span>')
            else:
                out.append(text)
        else:
            out.append(text)
        if kind != "ws":
            prev = tok
    return "".join(out), state


def _name_class(tok: str, prev: str) -> str:
    if tok in _KEYWORDS:
        return "k"
    if prev == "def":
        return "f"
    if prev == ".":
        return "a"
    if tok in ("np", "math", "numpy"):
        return "m"
    if tok in _BUILTINS:
        return "b"
    if tok.endswith("_bar") or re.search(r"_bar(_\d+)?$", tok):
        return "adj"
    if tok.startswith("_"):
        return "tmp"
    return ""


class SourceText(str):
    """Generated source that shows itself highlighted in Jupyter (a plain str otherwise)."""

    def _repr_html_(self) -> str:
        rows, state = [], None
        for line in self.splitlines():
            body, state = highlight(line, state)
            rows.append(body)
        css = ".adj-src .k{color:#8f3f9c;font-weight:600}.adj-src .b{color:#6d5a00}" \
              ".adj-src .f{color:#1a5fb4;font-weight:600}.adj-src .s{color:#2c7a39}" \
              ".adj-src .n{color:#b35900}.adj-src .c{color:#8a8a80;font-style:italic}" \
              ".adj-src .m,.adj-src .a{color:#0e7c86}.adj-src .adj{color:#b0452f}" \
              ".adj-src .tmp{color:#55606e}"
        return (f'<style>{css}</style><pre class="adj-src" style="font-size:12.5px;'
                f'line-height:1.45">' + "\n".join(rows) + "</pre>")

    def _repr_markdown_(self) -> str:
        return "```python\n" + str(self) + ("" if self.endswith("\n") else "\n") + "```\n"
