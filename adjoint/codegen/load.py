"""Writing generated modules to disk and importing them.

A module is written once, atomically (a temporary file in the same folder, then
`os.replace`), under a name that hashes everything it depends on: the source,
the options, the argument kinds and the compiler version. A second process finds
the file and imports it without compiling; a reader never sees half a file.
The file is real, so tracebacks, `inspect.getsource` and pdb all show its lines.

The folder is capped (`ADJOINT_CACHE_MAX_MB`, default 200; 0: no cap): past the cap
the least recently used modules go first. A module's access time is set each time a
process imports it (explicitly: atime updates are often off), its mtime is left
alone (Python's bytecode cache checks it).
"""
from __future__ import annotations

import builtins
import hashlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import time
import tempfile
import types
import warnings
from pathlib import Path

_loaded: dict[tuple, object] = {}  # (path, the globals it was given) -> module
_compiler_digest: str | None = None


def compiler_digest() -> str:
    """A hash of adjoint's own source, and of the Python and NumPy versions that the
    generated code was written for (it leaves out arguments equal to a callee's
    defaults, which change between NumPy versions): a changed compiler or environment
    never loads an old module."""
    global _compiler_digest
    if _compiler_digest is None:
        import numpy
        h = hashlib.sha256(f"{sys.version}\0{numpy.__version__}\0".encode())
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


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (setting
    it, even back, races with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so no reader sees half of it. The file gets the mode
    `open(path, 'w')` would give it (the existing file's, else 0666 less the umask):
    mkstemp's 0600 made every emitted module and page private to its writer."""
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
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


# ---------------------------------------------------------------- the folder's size

# what the cache holds: modules named `<name>_<16 hex digits>.py`, their index files
# (`.idx`, adjoint/index.py), their bytecode, and temporaries of interrupted writes.
# Nothing else in the folder is ever counted or removed (ADJOINT_CACHE_DIR may point
# somewhere shared by mistake).
_MODULE = re.compile(r".+_[0-9a-f]{16}\.(py|idx)")
_BYTECODE = re.compile(r".+_[0-9a-f]{16}\..+\.(pyc|nbi|nbc)")  # numba's cache too
_TEMP = re.compile(r"\..+_[0-9a-f]{16}\..+\.tmp")


def max_cache_bytes() -> int:
    """The cap on the cache folder's size in bytes (0: none)."""
    text = os.environ.get("ADJOINT_CACHE_MAX_MB", "200")
    try:
        mb = float(text)
    except ValueError:
        warnings.warn(f"adjoint: ADJOINT_CACHE_MAX_MB={text!r} is not a number; using 200",
                      RuntimeWarning, stacklevel=2)
        mb = 200.0
    return max(0, int(mb * 2**20))


def cache_files(folder=None) -> list[Path]:
    """The files of the cache folder that adjoint wrote."""
    folder = Path(folder) if folder is not None else default_cache_dir()
    out = []
    for where, pattern in ((folder, None), (folder / "__pycache__", _BYTECODE)):
        try:
            entries = list(os.scandir(where))
        except OSError:
            continue
        for e in entries:
            ok = (pattern.fullmatch(e.name) if pattern else
                  _MODULE.fullmatch(e.name) or _TEMP.fullmatch(e.name))
            if ok and e.is_file(follow_symlinks=False):
                out.append(Path(e.path))
    return out


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def cache_info(folder=None) -> dict:
    """{'folder': its path, 'files': how many adjoint wrote, 'bytes': their size}."""
    folder = Path(folder) if folder is not None else default_cache_dir()
    files = cache_files(folder)
    return {"folder": folder, "files": len(files), "bytes": sum(_size(p) for p in files)}


def cache_clear(folder=None) -> dict:
    """Remove what adjoint wrote in the cache folder; returns what was removed, as
    `cache_info` counts it."""
    folder = Path(folder) if folder is not None else default_cache_dir()
    files = cache_files(folder)
    removed = {"folder": folder, "files": 0, "bytes": 0}
    for p in files:
        size = _size(p)
        try:
            p.unlink()
        except OSError:
            continue
        removed["files"] += 1
        removed["bytes"] += size
    _sizes.pop(str(folder), None)
    return removed


def _bytecode_of(module: Path) -> list[Path]:
    cache = module.parent / "__pycache__"
    try:
        return [cache / n for n in os.listdir(cache) if n.startswith(module.stem + ".")]
    except OSError:
        return []


# per folder, this process's estimate of its size: one scan at the first write, then
# the sizes it writes (other processes' writes are seen at the next scan)
_sizes: dict[str, int] = {}


def _note_written(path: Path, cap: int | None = None) -> None:
    """Count a module just written; past the cap, remove the least recently used
    modules (never `path` itself) until the folder is back under 90% of it."""
    cap = max_cache_bytes() if cap is None else cap
    if not cap:
        return
    folder = str(path.parent)
    if folder not in _sizes:
        _sizes[folder] = sum(_size(p) for p in cache_files(path.parent))
    else:
        _sizes[folder] += _size(path)
    if _sizes[folder] <= cap:
        return
    groups: dict[Path, list] = {}  # module -> [last use, bytes, its files]
    for p in cache_files(path.parent):
        try:
            st = p.stat()
        except OSError:
            continue
        if p.suffix == ".tmp" and time.time() - st.st_mtime < 3600:
            continue  # perhaps another process's write in progress
        module = (p.parent.parent / (p.name.split(".")[0] + ".py") if p.suffix == ".pyc"
                  else p)
        g = groups.setdefault(module, [0.0, 0, []])
        g[0] = max(g[0], st.st_atime, st.st_mtime)
        g[1] += st.st_size
        g[2].append(p)
    total = sum(g[1] for g in groups.values())
    for module, (_, size, files) in sorted(groups.items(), key=lambda kv: kv[1][0]):
        if total <= 0.9 * cap:
            break
        if module == path:
            continue
        for p in files:
            try:
                p.unlink()
            except OSError:
                pass
        total -= size
    _sizes[folder] = total


def _touch(path: Path) -> None:
    """Mark `path` used now: its access time, not its mtime."""
    try:
        os.utime(path, (time.time(), path.stat().st_mtime))
    except OSError:
        pass


def load(path: Path, make_source, namespace: dict) -> object:
    """Import the module at `path`, writing it first (from `make_source()`) if absent
    or incomplete. `namespace` is set on the module before its code runs (the user's
    objects it refers to), so one file can serve several sets of globals."""
    memo = (str(path), tuple(sorted((k, id(v)) for k, v in namespace.items())))
    cached = _loaded.get(memo)
    if cached is not None:
        return cached
    text = code = None
    for attempt in range(2):
        if not _complete(path):
            if text is None:
                text = make_source().rstrip("\n") + f"\n\n\n{END}\n"
                # a module that does not compile is never written; compiled as the import
                # compiles it (dont_inherit), so that the import runs this code
                code = compile(text, str(path), "exec", dont_inherit=True)
            write_atomic(path, text)
            _note_written(path)
        else:
            _touch(path)
        mod_name = f"adjoint_generated.{path.stem}"
        spec = importlib.util.spec_from_file_location(
            mod_name, path, loader=_Loader(mod_name, str(path), text, code))
        module = importlib.util.module_from_spec(spec)
        module.__dict__.update(namespace)
        if namespace:
            module.__dict__["__builtins__"] = _given_first(namespace)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except FileNotFoundError:
            # another process's eviction removed it between the write and the import
            if attempt or path.exists():
                raise
            continue
        break
    _loaded[memo] = module
    return module


class _Loader(importlib.machinery.SourceFileLoader):
    """A generated module's loader. When the text was just written, the import runs the
    code it was compiled to for the check above (and writes the bytecode cache from it)
    rather than compiling the same text again: a long function's module takes as long
    to compile as a tenth of its gradient's whole compile."""

    def __init__(self, name: str, path: str, text: str | None, code) -> None:
        super().__init__(name, path)
        self.text, self.code = text, code

    def source_to_code(self, data, path, **kw):
        if self.code is not None and data == self.text.encode("utf-8"):
            return self.code
        return super().source_to_code(data, path, **kw)


def _given_first(namespace: dict) -> dict:
    """Builtins for a generated module whose `from <user module> import W, b` is answered
    from `namespace` when it holds every name asked for. The header's imports make the
    file usable on its own, but the user's module may not be importable by its name (run
    as a script, loaded from a path, a closure's cell), and the objects the gradient was
    specialised for are the ones given, not whatever the module holds now."""
    real = builtins.__import__

    def given_import(name, globals=None, locals=None, fromlist=(), level=0):
        if fromlist and not level and name.split(".")[0] not in ("adjoint", "numpy") and \
                all(n in namespace for n in fromlist):
            return types.SimpleNamespace(**{n: namespace[n] for n in fromlist})
        return real(name, globals, locals, fromlist, level)

    out = dict(vars(builtins))
    out["__import__"] = given_import
    return out
