"""Objects in the function being lowered: a user's object read as constants (Instance:
`self.W`, `model.loss`), an object of a plain class made in f (Built: `Layer(W, b)`, its
__init__ inlined), a namedtuple or dataclass made in f (a record, built by `replaced`),
and a frozen scipy.stats distribution (Frozen: `norm(loc, scale).logpdf(x)`).

Each function takes the Lowerer `low` that reads the code around the object.
"""
from __future__ import annotations

import functools
import inspect
import sys
import types

import numpy as np

from adjoint.frontend.bindings import (TEMP, Built, Frozen, Instance, Method, Partial, Static,
                                       dotted, is_library, is_literal, is_user_object,
                                       qualname, type_module)
from adjoint.frontend.source import read_attribute, read_class_attribute
from adjoint.ir.core import Const, Global, Value
from adjoint.rules import registry
from adjoint.rules.registry import prim_of
from adjoint.rules.structure import replaced


def instance_attribute(low, base: Instance, node, hint: str = TEMP):
    """`self.W` (an instance attribute, or a class attribute the instance does not
    shadow: a constant of the gradient, guarded like a global), `self.weights` (a
    property: its getter inlined, `self` bound to the object) or `self.method`
    (inlined when called, `self` bound to the object)."""
    obj, attr = base.obj, node.attr
    declared = inspect.getattr_static(type(obj), attr, None)
    if type(obj).__getattribute__ is not object.__getattribute__:
        raise low.error(f"`{dotted(node)}` is computed by its class's __getattribute__",
                        node, "pass the value as an argument")
    getter = declared.fget if isinstance(declared, property) else declared.func if \
        isinstance(declared, functools.cached_property) and attr not in obj.__dict__ \
        else None
    if getter is not None and inspect.isfunction(getter) and not is_library(getter):
        read_attribute(obj, attr)  # (recorded: the code is stale if the class changes)
        return low.call(Static(getter), [base], [], node, hint)
    if hasattr(type(declared), "__set__"):  # Python would not read obj.__dict__
        raise low.error(f"`{dotted(node)}` is computed by its class (a descriptor, a "
                        f"slot or a property whose getter is not a Python function)",
                        node, "pass the value as an argument")
    found, value = read_attribute(obj, attr)
    if not found:
        if inspect.isfunction(declared):
            return Partial(Static(declared), (base,), ())
        if isinstance(declared, staticmethod):
            return Static(declared.__func__)
        if isinstance(declared, classmethod):
            return Partial(Static(declared.__func__), (Static(type(obj)),), ())
        if declared is None or hasattr(type(declared), "__get__"):
            raise low.error(f"`{dotted(node)}` is neither an attribute of the object "
                            f"nor of its class", node, "read attributes set in __init__ "
                            "or in the class body, properties and methods; "
                            "__getattr__ and descriptors are not read by adjoint")
        value = declared  # a class attribute (`scale = 2.0` in the class body)
    name = f"{base.name}_{attr}"
    if is_literal(value):
        return Const(value)
    if isinstance(value, (np.ndarray, np.generic, list, tuple, dict)):
        return Global(name, value, None)
    if is_user_object(value):
        return Instance(value, name)
    if isinstance(value, types.ModuleType) or callable(value):
        return Static(value)
    if type(value).__module__.split(".")[0] in ("numpy", "builtins"):
        raise low.error(f"`{dotted(node)}` holds a {type(value).__name__}, which "
                        f"adjoint cannot read", node)
    return Instance(value, name)


def built(low, cls, args, kwargs, node) -> Built:
    """`Layer(W, b)` of a plain class: its __init__ inlined on a Built object, which
    records the attributes it stores."""
    obj = Built(cls, {}, low.ops)
    init = inspect.getattr_static(cls, "__init__")
    low.call(Static(init), [obj] + list(args), kwargs, node, TEMP)
    obj.building = False
    return obj


def store_attribute(low, obj: Built, attr: str, value, node) -> None:
    """`self.W = W` in the __init__ of an object made in f."""
    if not obj.building or low.ops is not obj.ops:
        raise low.error(f"an attribute of an object made in the function "
                        f"(`{obj.cls.__name__}`) is written after its __init__, or in "
                        f"a branch or loop of it", node, "store each attribute once "
                        "in __init__, or make a new object with the new values")
    if isinstance(value, Method):
        raise low.error("a method cannot be stored in an attribute", node,
                        "call it directly")
    obj.attrs[attr] = value


def built_attribute(low, obj: Built, node, hint):
    """`layer.W` (what __init__ stored), `layer.forward` (inlined when called, `self`
    bound to the object), a property's getter, or a class attribute (guarded)."""
    attr = node.attr
    if attr in obj.attrs:
        return obj.attrs[attr]
    declared = inspect.getattr_static(obj.cls, attr, None)
    getter = declared.fget if isinstance(declared, property) else None
    if inspect.isfunction(getter):
        return low.call(Static(getter), [obj], [], node, hint)
    if inspect.isfunction(declared):
        return Partial(Static(declared), (obj,), ())
    if isinstance(declared, staticmethod):
        return Static(declared.__func__)
    if isinstance(declared, classmethod):
        return Partial(Static(declared.__func__), (Static(obj.cls),), ())
    if declared is None or hasattr(type(declared), "__get__"):
        raise low.error(f"`{dotted(node)}` is neither stored by `{obj.cls.__name__}`'s "
                        f"__init__ nor an attribute of its class", node,
                        "read attributes set in __init__ or in the class body, "
                        "properties and methods")
    read_class_attribute(obj.cls, attr)  # (guarded: the code is stale if it changes)
    if is_literal(declared):
        return Const(declared)
    if isinstance(declared, (np.ndarray, np.generic, list, tuple, dict)):
        return Global(f"{obj.cls.__name__}_{attr}", declared, None)
    return low.classify(declared, attr)


def freeze(low, dist, args, kwargs, node) -> Frozen:
    """`scipy.stats.norm(loc, scale)` (`t(df, ...)`, `gamma(a, ...)`, `beta(a, b, ...)`,
    `multivariate_normal(mean, cov)`): its parameters, by name, for its methods."""
    names, name = _parameter_names(dist), _distribution_name(dist)
    given = list(zip(names, args)) + list(kwargs)
    unknown = [k for k, _ in given if k not in names]
    if len(args) > len(names) or unknown or len({k for k, _ in given}) < len(given):
        raise low.error(f"`{name}(...)` takes {', '.join(names)} here, each once",
                        node, f"write {name}({', '.join(names)})")
    low.check_operands([v for _, v in given], node)
    return Frozen(dist, tuple(given))


def frozen_method(low, frozen: Frozen, node):
    """`d.logpdf` of `d = norm(loc, scale)`: `norm.logpdf` with d's parameters, where
    a rule differentiates it (`rvs`, `mean`, ... are refused)."""
    method, name = getattr(frozen.dist, node.attr, None), _distribution_name(frozen.dist)
    if method is None or registry.lookup(method) is None:
        have = [m for m in ("logpdf", "pdf", "cdf", "logcdf")
                if registry.lookup(getattr(frozen.dist, m, None)) is not None]
        raise low.error(f"`.{node.attr}` of a frozen `{name}` distribution is not "
                        f"supported", node, f"call {', '.join(have)} on it, or write "
                        f"scipy.stats.{name}.{node.attr}(...) with its parameters")
    return Partial(Static(method), (), frozen.kwargs)


def record(low, cls, args, kwargs, node, hint):
    """`P(a, b)` of a namedtuple class: P of its constant fields (0.0 in place of the
    others), then each other field replaced in turn, so that the record is built by
    `replaced`, whose rules a namedtuple parameter's `_replace` already uses."""
    made = next(c for c in cls.__mro__ if "_make" in vars(c))  # by namedtuple()
    if any("__new__" in vars(c) or "__init__" in vars(c)
           for c in cls.__mro__[:cls.__mro__.index(made)]):
        raise low.error(f"`{cls.__name__}` builds its instances with its own __new__ or "
                        f"__init__, which adjoint does not read", node,
                        "build the namedtuple it derives from, with its fields given")
    try:
        bound = inspect.signature(made).bind(*args, **dict(kwargs))
    except TypeError as e:
        raise low.error(f"`{cls.__name__}(...)`: {e}", node) from None
    values = [bound.arguments[name] if name in bound.arguments else
              low.classify(cls._field_defaults[name], name) for name in cls._fields]
    x = low.emit(registry.primitive(cls, qualname(cls), pure=False),
                 [v if not isinstance(v, Value) else Const(0.0) for v in values],
                 hint=hint, node=node)
    for name, value in zip(cls._fields, values):
        if isinstance(value, Value):
            x = low.emit(prim_of(replaced), (x, Const(name), value), hint=hint, node=node)
    return x


def dataclass_record(low, cls, args, kwargs, node, hint):
    """`Lin(W, b)` of a dataclass whose __init__ only stores its fields: built as
    `record` builds a namedtuple, each field then replaced (dataclasses.replace)."""
    import dataclasses
    fields = dataclasses.fields(cls)
    init = getattr(cls, "__init__", None)  # the one dataclass made: it only stores
    plain = getattr(getattr(init, "__code__", None), "co_filename", "") == "<string>" and \
        not hasattr(cls, "__post_init__") and all(
            f.init and f.default_factory is dataclasses.MISSING for f in fields)
    if not plain:
        raise low.error(f"a dataclass (`{cls.__name__}`) built inside the differentiated "
                        f"function with an __init__, a __post_init__ or a field made "
                        f"by a factory, which adjoint does not read", node,
                        "give every field when building it, or build it outside f "
                        "and pass it as an argument")
    try:
        bound = inspect.signature(cls).bind(*args, **dict(kwargs))
    except TypeError as e:
        raise low.error(f"`{cls.__name__}(...)`: {e}", node) from None
    values = [bound.arguments[f.name] if f.name in bound.arguments else
              low.classify(f.default, f.name) for f in fields]
    x = low.emit(registry.primitive(cls, qualname(cls), pure=False),
                 [v if not isinstance(v, Value) else Const(0.0) for v in values],
                 hint=hint, node=node)
    for f, value in zip(fields, values):
        if isinstance(value, Value):
            x = low.emit(prim_of(replaced), (x, Const(f.name), value), hint=hint, node=node)
    return x


def is_plain_class(obj) -> bool:
    """A class of the user's whose instances adjoint can make in f (`Built`): its own
    Python __init__, and the default __new__, attribute access and metaclass."""
    if not inspect.isclass(obj) or is_library(obj) or type(obj) is not type:
        return False
    init = inspect.getattr_static(obj, "__init__", None)
    return inspect.isfunction(init) and not is_library(init) and all(
        getattr(obj, m) is getattr(object, m) for m in (
            "__new__", "__setattr__", "__getattribute__")) and \
        not hasattr(obj, "__getattr__")


def is_namedtuple_class(fn) -> bool:
    """A class made by collections.namedtuple or typing.NamedTuple, or derived from one."""
    return inspect.isclass(fn) and issubclass(fn, tuple) and hasattr(fn, "_fields") and \
        hasattr(fn, "_make") and hasattr(fn, "_replace")


def is_distribution(obj) -> bool:
    """A scipy.stats distribution whose logpdf has a rule (`norm`, `t`, `gamma`, `beta`,
    `multivariate_normal`): calling it freezes its parameters."""
    return type_module(obj).startswith("scipy.stats.") and hasattr(obj, "logpdf") and \
        not hasattr(obj, "dist") and registry.lookup(obj.logpdf) is not None


def frozen_from(obj):
    """The distribution a frozen one made outside f was frozen from (SciPy's own object,
    `scipy.stats.norm`: the frozen one holds a copy, which has no rule), or None."""
    dist = getattr(obj, "dist", None)
    if dist is None or not hasattr(obj, "kwds"):
        return None
    stats = sys.modules.get("scipy.stats")
    twin = getattr(stats, getattr(dist, "name", ""), None)
    return twin if type(twin) is type(dist) else None


def _distribution_name(dist) -> str:
    return getattr(dist, "name", None) or type(dist).__name__.removesuffix("_gen")


def _parameter_names(dist) -> list:
    """The parameters a distribution's methods take after x, in their order."""
    if hasattr(dist, "shapes") and hasattr(dist, "numargs"):  # rv_continuous
        return (dist.shapes.split(", ") if dist.shapes else []) + ["loc", "scale"]
    return [p for p in inspect.signature(dist.__call__).parameters
            if p not in ("seed", "kwds")]  # multivariate_normal: mean, cov, allow_singular
