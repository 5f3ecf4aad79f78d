"""`adjoint explain` (text and HTML), `adjoint ir --dot/--svg`, the generated docs,
and the explain page in a headless browser (skipped where chromium is absent)."""
import contextlib
import html.parser
import inspect
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import adjoint
from adjoint.cli import main as cli
from adjoint.explain import (SourceText, explain, explain_html, explain_text, highlight,
                             parse_generated)
from adjoint.frontend.lower import lower_function
from adjoint.ir.core import For, If, While, walk_ops
from adjoint.ir.dot import to_dot, to_svg
from adjoint.ir.printer import print_function
from tests import programs as P

ROOT = Path(__file__).resolve().parents[1]
R = np.random.default_rng(0)

CASES = {  # name: (function, wrt, args)
    "neuron": (P.neuron, (0, 2), (0.5, 1.5, 0.1, 1.0)),
    "product": (P.product, 0, (R.normal(size=5),)),
    "branch": (P.branch, (0, 1), (1.0, 2.0)),
    "calls": (P.calls, 0, (R.normal(size=4),)),
    "rnn_checkpointed": (P.rnn_checkpointed, 0, (R.normal(size=(3, 3)) * 0.5,
                                                 R.normal(size=(7, 3)), R.normal(size=3), 3)),
    "newton_sqrt": (P.newton_sqrt, 0, (2.0,)),
}


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(argv))
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- the map


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_generated_line_maps_to_a_source_line_that_says_what_its_comment_says(name):
    f, wrt, args = CASES[name]
    ex = explain(f, args=args, wrt=wrt)
    rows = {row.key: row for block in ex.blocks for row in block.lines}
    keyed = [g for g in ex.generated if g.key is not None]
    assert keyed, "no generated line was mapped"
    for g in keyed:
        assert g.key in rows, f"generated line {g.number} maps to {g.key}, which is not shown"
        if g.header:  # `# line N: <text>` quotes source line N
            quoted = g.text.split(": ", 1)[1].strip()
            assert quoted == rows[g.key].text.strip(), (g.text, rows[g.key].text)
    # every statement of the function body that the gradient needs has partners
    assert any(g.sweep == "backward" for g in keyed)
    assert any(g.sweep == "forward" for g in keyed)


def test_the_backward_lines_of_a_loop_body_map_to_the_loop_body():
    ex = explain(P.product, args=(np.ones(4),))
    body_line = next(row for b in ex.blocks for row in b.lines if "p = p * x[i]" in row.text)
    partners = ex.partners(body_line.key)
    backward = [g.text.strip() for g in partners if g.sweep == "backward"]
    assert any("x_bar[i]" in t for t in backward), backward
    assert any(g.sweep == "forward" and "p * " in g.text for g in partners)
    loop_line = next(row for b in ex.blocks for row in b.lines if "for i in range" in row.text)
    assert any("reversed(" in g.text for g in ex.partners(loop_line.key))


def test_residuals_are_read_from_the_comment_and_attributed_to_the_lines_that_make_them():
    ex = explain(P.neuron, args=(0.5, 1.5, 0.1, 1.0), wrt=(0, 2))
    (fn, names), = ex.residuals.items()
    assert fn == "neuron_grad" and "y" in names
    y_line = next(row for b in ex.blocks for row in b.lines if "y = 1.0 /" in row.text)
    assert "y" in ex.keeps(y_line.key)


def test_helpers_inlined_from_the_same_file_are_shown_as_their_own_blocks():
    ex = explain(P.calls, args=(np.ones(4),))
    titles = [b.title for b in ex.blocks]
    assert titles[0].startswith("calls")
    assert any(t.startswith("_affine") for t in titles[1:]), titles
    assert any(t.startswith("_stats") for t in titles[1:]), titles


def test_parse_generated_scopes_headers_by_indentation():
    text = "\n".join([
        "def f_grad(x, out_bar=1.0):",
        '    """Gradient."""',
        "    # --- forward ---",
        "    # line 3: if x > 0:",
        "    if x > 0:",
        "        # line 4: y = x * x",
        "        y = x * x",
        "    else:",
        "        y = x",
        "    # --- backward ---",
        "    # reads from the forward sweep: y",
        "    # line 5: return y",
        "    y_bar = out_bar",
        "    return y_bar",
    ])
    lines, residuals = parse_generated(text, "/somewhere/f.py")
    by_text = {g.text.strip(): g for g in lines}
    assert by_text["if x > 0:"].key == "3"
    assert by_text["y = x * x"].key == "4"
    assert by_text["else:"].key == "3"  # the dedent returns to the enclosing header
    assert by_text["y_bar = out_bar"].key == "5" and by_text["y_bar = out_bar"].sweep == "backward"
    assert by_text["return y_bar"].key is None
    assert residuals == {"f_grad": ("y",)}


def test_values_read_back_from_tapes_are_found_in_every_form_the_reverse_loop_takes():
    from adjoint.explain import tape_reads
    saved = {"_tape", "_range", "A"}
    assert tape_reads("        _t2, p = _tape.pop()", saved) == {"_t2", "p"}
    assert tape_reads("    for t, _s in zip(reversed(_range), reversed(_tape)):", saved) == {"_s"}
    assert tape_reads("        _t5 = _s[0]", saved | {"_s"}) == {"_t5"}
    assert tape_reads("        _t5 = x[0]", saved) == set()
    assert tape_reads("    for i in reversed(_range):", saved) == set()


# ---------------------------------------------------------------- text


def test_text_grouped_shows_each_source_line_then_its_generated_lines():
    text = explain_text(P.neuron, args=(0.5, 1.5, 0.1, 1.0), wrt=(0, 2))
    lines = text.splitlines()
    assert lines[0].startswith("neuron -> neuron_grad")
    at = next(k for k, line in enumerate(lines) if line.strip().endswith("z = w * x + b")
              and "|" not in line)
    following = []
    for line in lines[at + 1:]:
        if "|" not in line and "kept" not in line:
            break
        following.append(line)
    assert any(re.search(r"fwd\s+\d+ \| z = w \* x \+ b", line) for line in following), following
    assert any(re.search(r"bwd\s+\d+ \| w_bar = ", line) for line in following), following
    assert "reads from its forward sweep" in text


def test_text_columns_put_the_source_left_and_every_generated_line_right():
    f, wrt, args = CASES["product"]
    text = explain_text(f, args=args, wrt=wrt, layout="columns")
    source = adjoint.source(f, wrt, args=args)
    body = text.split("\n", 2)[2]
    for line in source.splitlines():
        if line.strip():
            assert line.strip() in body, line
    assert "p = p * x[i]" in body.split(" | ")[0] or any(
        row.split(" | ")[0].rstrip().endswith("p = p * x[i]") for row in body.splitlines())
    with pytest.raises(ValueError):
        explain_text(f, args=args, layout="sideways")


def test_without_args_the_generic_gradient_is_explained():
    text = explain_text(P.neuron, wrt=(0, 2))
    assert "bwd" in text and "fwd" in text


# ---------------------------------------------------------------- html


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.hrefs, self.tags = set(), [], []
        self.keys: dict[str, list[str]] = {}  # data-key -> classes of the lines
        self.res, self.sections, self.scripts, self.external = [], [], 0, []
        self._section = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        if tag == "section":
            self._section = a.get("class", "")
            self.sections.append(self._section)
        if "data-key" in a:
            self.keys.setdefault(a["data-key"], []).append(self._section)
        if "data-res" in a:
            self.res.append(a["data-res"])
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if name in a and re.match(r"^(https?:)?//", a[name]):
                self.external.append(a[name])
        if tag == "link":
            self.external.append(a.get("href", "<link>"))


@pytest.mark.parametrize("name", ["product", "calls", "rnn_checkpointed"])
def test_html_page_links_every_source_line_to_its_partners_and_back(name):
    f, wrt, args = CASES[name]
    page = explain_html(f, args=args, wrt=wrt)
    parsed = _Page()
    parsed.feed(page)
    assert page.startswith("<!DOCTYPE html>")
    assert "col src" in parsed.sections and "col gen" in parsed.sections
    assert not parsed.external, f"the page must be self-contained: {parsed.external}"
    assert "<style>" in page and parsed.scripts == 1
    for href in parsed.hrefs:
        assert href.startswith("#") and href[1:] in parsed.ids, f"dangling link {href}"
    assert any(h.startswith("#g") for h in parsed.hrefs)  # source -> generated
    assert any(h.startswith("#s") for h in parsed.hrefs)  # generated -> source
    # a key shared by a source line and generated lines is what hover/click light up
    shared = [k for k, where in parsed.keys.items()
              if "col src" in where and "col gen" in where]
    assert shared
    ex = explain(f, args=args, wrt=wrt)
    for names in ex.residuals.values():
        for n in names:
            assert n in parsed.res, f"residual {n} is not marked"
    if name == "product":  # the prefix product p is read back in the backward sweep
        backward = page.split("--- backward ---")[1]
        assert 'data-res="p"' in backward


def test_html_escapes_source_text():
    page = explain_html(P.branch, args=(1.0, 2.0), wrt=(0, 1))
    assert "if x &gt; 0:" in page or "x </span>&gt;" in page or "&gt;" in page
    assert "if x > 0" not in re.sub(r"<[^>]+>", "", page.split("<script>")[0]).replace(
        "&gt;", "#")


def test_cli_explain_text_columns_and_html(tmp_path):
    code, out, _ = run_cli("explain", "tests/programs.py:product", "--args", "np.ones(4)")
    assert code == 0 and "product -> product_grad" in out and "bwd" in out
    code, out, _ = run_cli("explain", "tests/programs.py:neuron", "--wrt", "w,b", "--args",
                           "0.5, 1.5, 0.1, 1.0", "--columns")
    assert code == 0 and " | " in out and "neuron_grad" in out
    page = tmp_path / "neuron.html"
    code, out, err = run_cli("explain", "tests/programs.py:neuron", "--wrt", "w,b",
                             "--html", str(page))
    assert code == 0 and page.exists() and "wrote" in err
    assert "neuron_grad" in page.read_text()


# ---------------------------------------------------------------- highlighting


def test_highlighter_marks_tokens_and_carries_triple_quoted_strings():
    text, state = highlight('def f(x):  # say "hi" <b>')
    assert '<span class="k">def</span>' in text and '<span class="f">f</span>' in text
    assert '<span class="c"># say &quot;hi&quot; &lt;b&gt;</span>' in text and state is None
    text, state = highlight('    """A docstring', None)
    assert state == '"""' and '<span class="s">' in text
    text, state = highlight('    still """ + x_bar', state)
    assert state is None and '<span class="adj">x_bar</span>' in text
    text, _ = highlight("y = np.exp(1.5e-3) if a < b else 'x'")
    assert '<span class="m">np</span>' in text and '<span class="n">1.5e-3</span>' in text
    assert "&lt;" in text and '<span class="s">&#x27;x&#x27;</span>' in text
    text, _ = highlight("z = _t1 * y", marks={"_t1", "y"}, defined={"_t1"})
    assert 'data-res="_t1"' in text and "res-def" in text and 'data-res="y"' in text


def test_decorated_functions_show_their_source_in_notebooks():
    f = adjoint.adjoint(P.neuron)
    src = f.source((0, 2))
    assert isinstance(src, SourceText) and isinstance(src, str)
    assert src == adjoint.source(P.neuron, (0, 2))
    assert src._repr_html_().startswith("<style>") and "neuron_grad" in src._repr_html_()
    md = src._repr_markdown_()
    assert md.startswith("```python\n") and md.rstrip().endswith("```")


# ---------------------------------------------------------------- dot


def _corpus():
    out = []
    for name, f in inspect.getmembers(P, inspect.isfunction):
        if f.__module__ == P.__name__ and not name.startswith("_"):
            try:
                out.append((name, lower_function(f)))
            except adjoint.AdjointError:
                pass  # the corpus also holds programs the compiler rejects
    return out


def test_dot_graph_has_every_value_and_one_cluster_per_region():
    corpus = _corpus()
    assert len(corpus) > 30
    for name, fn in corpus:
        text = to_dot(fn)
        assert text.startswith(f'digraph "{fn.name}" {{') and text.rstrip().endswith("}")
        assert text.count("{") == text.count("}"), name
        printed = set(re.findall(r"%(\w+)", print_function(fn)))
        labelled = set(re.findall(r'label="%(\w+)', text)) | set(
            re.findall(r'label="%\w+ / %(\w+)', text))
        assert printed <= labelled, (name, printed - labelled)
        regions = sum(isinstance(op, (For, If, While)) for op in walk_ops(fn.body))
        subclusters = sum(len(op.blocks) if isinstance(op, (If, While)) else 0
                          for op in walk_ops(fn.body))
        assert text.count("subgraph cluster_") == regions + subclusters, name


def test_cli_ir_dot_prints_the_graph():
    code, out, _ = run_cli("ir", "tests/programs.py:newton_sqrt", "--dot")
    assert code == 0 and out.startswith('digraph "newton_sqrt"')
    assert 'label="while"' in out and "next" in out and "->" in out
    code, out, _ = run_cli("ir", "tests/programs.py:newton_sqrt")
    assert code == 0 and out.startswith("func newton_sqrt")


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="Graphviz's `dot` program is not installed (apt-get install graphviz)")
def test_dot_renders_to_svg_for_the_whole_corpus(tmp_path):
    for name, fn in _corpus():
        svg = to_svg(to_dot(fn))
        assert "<svg" in svg, name
    out = tmp_path / "rnn.svg"
    code, _, err = run_cli("ir", "tests/programs.py:rnn", "--svg", str(out))
    assert code == 0 and out.read_text().lstrip().startswith("<?xml") and "<svg" in out.read_text()


RNN_ARGS = "np.eye(3) * 0.5, np.ones((3, 2)), np.ones((5, 2)), np.ones(3)"


def test_cli_ir_grad_draws_both_sweeps_of_the_gradient():
    code, out, _ = run_cli("ir", "tests/programs.py:rnn", "--grad", "--wrt", "W,h0", "--args",
                           RNN_ARGS, "--dot")
    assert code == 0 and out.startswith('digraph "rnn_grad"')
    assert 'label="forward"' in out and 'label="backward"' in out
    assert 'label="for (reversed)"' in out and 'label="%out_bar"' in out
    bars = set(re.findall(r'label="%(\w+_bar(?:_\d+)?)"', out))
    assert {"W_bar", "h_bar"} <= bars, bars
    # the reverse ops sit in the backward cluster, the primal ones before it
    forward, backward = out.split('label="backward"')
    assert "np.tanh(" in forward and "_bar" not in forward.split('label="forward"')[1]
    assert "%h_bar" in backward
    # the text form is the same function
    code, text, _ = run_cli("ir", "tests/programs.py:rnn", "--grad", "--wrt", "W,h0", "--args",
                            RNN_ARGS)
    assert code == 0 and text.startswith("func rnn_grad(%W, %U, %xs, %h0, %out_bar)")
    assert "section('backward')" in text and "%W_bar" in text
    # without example arguments: the generic gradient, with a checkpointed loop
    code, text, _ = run_cli("ir", "tests/programs.py:rnn", "--grad", "--checkpoint", "2")
    assert code == 0 and "%W_bar" in text and "checkpoint" in text


def test_cli_ir_options_of_the_gradient_need_grad():
    with pytest.raises(SystemExit) as e:
        run_cli("ir", "tests/programs.py:rnn", "--wrt", "W")
    assert e.value.code == 2


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="Graphviz's `dot` program is not installed (apt-get install graphviz)")
def test_cli_ir_grad_renders_to_svg(tmp_path):
    for name, wrt in (("rnn", "W"), ("newton_sqrt", "0"), ("branch", "0,1")):
        out = tmp_path / f"{name}.svg"
        code, _, err = run_cli("ir", f"tests/programs.py:{name}", "--grad", "--wrt", wrt,
                               "--svg", str(out))
        svg = out.read_text()
        assert code == 0 and svg.lstrip().startswith("<?xml") and "<svg" in svg, err
        assert "_bar" in svg and ">backward<" in svg, name


def test_svg_without_dot_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="Graphviz"):
        to_svg("digraph g {}")
    code, _, err = run_cli("ir", "tests/programs.py:rnn", "--svg", str(tmp_path / "x.svg"))
    assert code == 1 and "Graphviz" in err


# ---------------------------------------------------------------- docs


def test_committed_docs_are_up_to_date_with_the_compiler(tmp_path):
    # a fresh process: rules registered by other tests must not leak into the page
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    for page in ("rules.md", "subset.md", "api.md"):
        fresh = (tmp_path / page).read_text()
        committed = (ROOT / "docs" / page).read_text()
        assert committed == fresh, (f"docs/{page} is out of date with the compiler: "
                                    f"run `python docs/generate.py`")


def test_rules_page_lists_every_registry_entry_with_its_templates():
    # the registry of a fresh process: other tests register rules of their own
    done = subprocess.run([sys.executable, "-c", "import adjoint\n"
                           "from adjoint.rules import registry\n"
                           "print('\\n'.join(e.prim.name for e in registry.entries()))"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    names = done.stdout.split()
    assert len(names) > 200, done.stderr
    text = (ROOT / "docs" / "rules.md").read_text()
    missing = [n for n in names if f"| `{n}` |" not in text]
    assert not missing, f"docs/rules.md does not list {missing}"
    assert "@defunary(np.exp)" in text and "def exp_jvp(ans, x, x_dot):" in text


# ---------------------------------------------------------------- in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium(*args, timeout=120) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="adjoint-chromium-")
    try:
        return subprocess.run([CHROMIUM, *_BROWSER_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _png_facts(path: Path) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values of the decompressed pixels."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                                              "chromium); the browser check is skipped")
def test_explain_page_renders_in_a_headless_browser(tmp_path):
    f, wrt, args = CASES["product"]
    page = tmp_path / "product.html"
    page.write_text(explain_html(f, args=args, wrt=wrt))
    body_line = next(row for b in explain(f, args=args, wrt=wrt).blocks for row in b.lines
                     if "p = p * x[i]" in row.text)
    url = page.as_uri() + f"#s{body_line.line}"

    shot = tmp_path / "product.png"
    _chromium(f"--screenshot={shot}", "--window-size=1400,900", url)
    assert shot.exists(), "chromium wrote no screenshot"
    width, height, distinct = _png_facts(shot)
    assert (width, height) == (1400, 900)
    assert shot.stat().st_size > 20_000 and distinct > 50, "the screenshot looks blank"

    dom = _chromium("--dump-dom", url).stdout
    assert 'class="col src"' in dom and 'class="col gen"' in dom
    assert re.search(r'<a class="(fwd|bwd)" href="#g\d+"', dom), "no source-to-generated links"
    assert re.search(r'class="from" href="#s\d+"', dom), "no generated-to-source links"
    # every link lands somewhere: its target is an element of the rendered page
    targets = set(re.findall(r'href="#([\w-]+)"', dom))
    ids = set(re.findall(r'\bid="([\w-]+)"', dom))
    assert targets and targets <= ids, f"links to nothing: {sorted(targets - ids)[:5]}"
    # the script ran: opening the page at a source line pins it and its partners
    pinned = re.findall(r'<div class="ln[^"]*\bpin\b[^"]*"', dom)
    assert len(pinned) >= 3, "the page's script did not light up the partners"


def test_the_docs_keep_a_screenshot_of_the_explain_page():
    shot = ROOT / "docs" / "explain.png"
    assert shot.exists(), "run `python docs/generate.py --explain` (needs chromium)"
    width, height, distinct = _png_facts(shot)
    assert width >= 1000 and height >= 600 and distinct > 50
    assert (ROOT / "docs" / "explain.html").exists()


def test_notebook_display_of_gradients_and_explanations():
    import adjoint
    from tests import programs as P
    g = adjoint.grad(P.product)
    assert "not compiled yet" in g._repr_html_() and "product" in repr(g)
    g(np.linspace(0.5, 1.5, 4))
    shown = g._repr_html_()
    assert 'class="adj-src"' in shown and "product_grad" in shown
    ex = adjoint.explain(P.product, args=(np.linspace(0.5, 1.5, 4),))  # callable
    frame = ex._repr_html_()
    # the page's styles stay inside its own frame: nothing reaches the notebook's page
    assert frame.startswith("<iframe srcdoc=") and "<style>" not in frame
    assert "&lt;style&gt;" in frame
