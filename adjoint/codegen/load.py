"""Writing generated modules to disk and importing them.

A module is written once, atomically (a temporary file in the same folder, then
`os.replace`), under a name that hashes everything it depends on: the source,
the options, the argument kinds and the compiler version. A second process finds
the file and imports it without compiling; a reader never sees half a file.
The file is real, so tracebacks, `inspect.getsource` and pdb all show its lines.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path

_loaded: dict[tuple, object] = {}  # (path, the globals it was given) -> module
_compiler_digest: str | None = None


def compiler_digest() -> str:
    """A hash of adjoint's own source: a changed compiler never loads an old module."""
    global _compiler_digest
    if _compiler_digest is None:
        h = hashlib.sha256()
        root = Path(__file__).resolve().parent.parent
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        _compiler_digest = h.hexdigest()
    return _compiler_digest


def default_cache_dir() -> Path:
    env = os.environ.get("ADJOINT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "adjoint"


def key(*parts) -> str:
    h = hashlib.sha256(compiler_digest().encode())
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".probe", delete=True)
        probe.close()
        return True
    except OSError:
        return False


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def module_path(name: str, digest: str, cache_dir=None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if not _writable(folder):
        fallback = Path(tempfile.gettempdir()) / f"adjoint-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        warnings.warn(f"adjoint: cache folder {folder} is not writable; using {fallback}",
                      RuntimeWarning, stacklevel=3)
        folder = fallback
        folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}_{digest[:16]}.py"


END = "# end of generated module"


def _complete(path: Path) -> bool:
    """A module file that ends with its end marker (an atomic write always does; a
    file truncated by something else does not)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 64))
            return f.read().rstrip().endswith(END.encode())
    except OSError:
        return False


def load(path: Path, make_source, namespace: dict) -> object:
    """Import the module at `path`, writing it first (from `make_source()`) if absent
    or incomplete. `namespace` is set on the module before its code runs (the user's
    objects it refers to), so one file can serve several sets of globals."""
    memo = (str(path), tuple(sorted((k, id(v)) for k, v in namespace.items())))
    cached = _loaded.get(memo)
    if cached is not None:
        return cached
    if not _complete(path):
        text = make_source().rstrip("\n") + f"\n\n\n{END}\n"
        compile(text, str(path), "exec")  # a module that does not compile is never written
        write_atomic(path, text)
    mod_name = f"adjoint_generated.{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(namespace)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    _loaded[memo] = module
    return module
