"""Reading a function's definition from its file: the block found by indentation parses
to the same tree as the definition in a parse of the whole file, whatever the layout."""
import importlib.util
import inspect
import textwrap

import gast

from adjoint.frontend.source import _parse_file, parse_function

LAYOUTS = textwrap.dedent('''
    import functools


    def plain(x):
        return x * 2
    def right_after(x):  # no blank line between definitions
        y = x + 1
        # a comment at the margin of the body
    # and one at the file's margin
        return y


    @functools.lru_cache(maxsize=None)
    def decorated(x):
        return x


    def margin_string(x):
        s = """
    a string at the margin"""
        return x


    def signature_at_the_margin(x,
    y=1.0):
        return x * y


    class Holder:
        def method(self, x):
            def inner(z):
                return z * z
            return inner(x)


    def last(x):
        return x - 1''')  # no newline at the end


def test_each_definition_parses_as_in_the_whole_file(tmp_path):
    path = tmp_path / "layouts.py"
    path.write_text(LAYOUTS)
    spec = importlib.util.spec_from_file_location("layouts", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    whole = _parse_file(str(path), LAYOUTS)
    fns = [mod.plain, mod.right_after, mod.decorated.__wrapped__, mod.margin_string,
           mod.signature_at_the_margin, mod.Holder.method, mod.last]
    for f in fns:
        node = parse_function(f).node
        assert node.name == f.__name__
        want = whole[inspect.unwrap(f).__code__.co_firstlineno]
        assert gast.dump(node, include_attributes=True) == \
            gast.dump(want, include_attributes=True), f.__name__
