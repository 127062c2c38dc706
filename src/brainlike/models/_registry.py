"""``load(name)``: networks by name through an open table of loaders.

A name is ``<prefix>:<rest>`` (``torchvision:alexnet``, ``onnx:net.onnx``); the prefix picks a
loader, called as ``loader(rest, pretrained=..., **options)`` and returning a ``Model``. Loaders
come from three places, looked up in this order:

1. ``register(prefix, loader)`` in the running process;
2. the built-in table below (importing a loader's module only when its prefix is used);
3. installed plugins: the ``brainlike.models`` entry-point group (``prefix = "module:function"``),
   read on the first lookup of a prefix found nowhere else; nothing is imported before that.

Random weights (``pretrained=False``) are drawn from ``seed`` inside a forked torch RNG, so the
same request gives bitwise the same network every time and the caller's RNG is left untouched.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable

from ._model import Model, Preprocess, _eval

log = logging.getLogger("brainlike")

ENTRY_POINT_GROUP = "brainlike.models"

BUILTIN: dict[str, str] = {
    "torchvision": "brainlike.models._zoo:load_torchvision",
    "timm": "brainlike.models._zoo:load_timm",
    "efficientnet_lite": "brainlike.models._zoo:load_efficientnet_lite",
    "open_clip": "brainlike.models._hub:load_open_clip",
    "hf": "brainlike.models._hub:load_hf",
    "torchscript": "brainlike.models._files:load_torchscript",
    "onnx": "brainlike.models._files:load_onnx",
}

_REGISTERED: dict[str, Callable] = {}
_PLUGINS: dict[str, object] | None = None  # prefix -> EntryPoint, read once on demand
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_LITE = re.compile(r"^efficientnet[_-]lite([0-4])$")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be found locally nor downloaded."""


def register(prefix: str, loader: Callable, *, replace: bool = False) -> None:
    """Make ``load("<prefix>:<rest>")`` call ``loader(rest, pretrained=..., **options)``.

    ``loader`` returns a ``Model`` (``wrap`` builds one from any ``nn.Module``). A prefix that is
    already registered or built in is refused unless ``replace=True``.
    """
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ValueError("prefix must be a name of letters, digits, '_', '.', '-' starting with a letter; "
                         f"got {prefix!r}")
    if not callable(loader):
        raise ValueError("loader must be callable (rest, pretrained=..., **options) -> Model; "
                         f"got {type(loader).__name__}")
    if not replace and (prefix in _REGISTERED or prefix in BUILTIN):
        raise ValueError(f"model prefix {prefix!r} is already registered; pass replace=True to override it")
    _REGISTERED[prefix] = loader


def unregister(prefix: str) -> None:
    """Remove a prefix added with ``register`` (built-in and plugin prefixes stay)."""
    if prefix not in _REGISTERED:
        raise ValueError(f"prefix must be one added with register(); got {prefix!r} "
                         f"(registered: {sorted(_REGISTERED)})")
    del _REGISTERED[prefix]


def _plugins() -> dict:
    global _PLUGINS
    if _PLUGINS is None:
        from importlib.metadata import entry_points

        _PLUGINS = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _PLUGINS


def refresh_plugins() -> None:
    """Read the ``brainlike.models`` entry points again (after installing a plugin in this process)."""
    global _PLUGINS
    _PLUGINS = None


def prefixes() -> dict[str, str]:
    """Every known prefix and where its loader comes from (``register``, ``builtin``, ``plugin <dist>``)."""
    out = {p: "builtin" for p in BUILTIN}
    for p, ep in _plugins().items():
        out.setdefault(p, f"plugin {getattr(ep.dist, 'name', '?')} ({ep.value})")
    out.update({p: "register" for p in _REGISTERED})
    return dict(sorted(out.items()))


def _import(target: str, what: str) -> Callable:
    module, _, func = target.partition(":")
    obj = importlib.import_module(module)
    for part in func.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{what} ({target}) is not callable")
    return obj


def loader_for(prefix: str) -> Callable:
    """The loader of ``prefix`` (see module docstring for the lookup order)."""
    if prefix in _REGISTERED:
        return _REGISTERED[prefix]
    if prefix in BUILTIN:
        return _import(BUILTIN[prefix], f"built-in loader {prefix!r}")
    ep = _plugins().get(prefix)
    if ep is not None:
        try:
            obj = ep.load()
        except Exception as err:
            raise ImportError(f"the model plugin {prefix!r} ({ep.value}, from {getattr(ep.dist, 'name', '?')}) "
                              f"failed to import: {err}") from err
        if not callable(obj):
            raise TypeError(f"the model plugin {prefix!r} ({ep.value}) is not callable")
        return obj
    raise ValueError(
        f"model name prefix {prefix!r} is unknown; known prefixes: {', '.join(prefixes())} "
        "(add one with brainlike.models.register or a 'brainlike.models' entry point)"
    )


def _check_seed(seed) -> int:
    import numbers

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def _check_options(prefix: str, loader: Callable, rest: str, pretrained: bool, options: dict) -> None:
    """Options the loader does not take fail before anything is built, naming those it takes."""
    import inspect

    try:
        sig = inspect.signature(loader)
    except (TypeError, ValueError):  # a builtin or C callable: let the call decide
        return
    try:
        sig.bind(rest, pretrained=pretrained, **options)
    except TypeError:
        takes = [n for n, p in list(sig.parameters.items())[1:]
                 if n != "pretrained" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        raise ValueError(f"options for {prefix!r} models must be among {takes}; got {sorted(options)}") from None


def wrap(module, preprocess: Callable | None = None, name: str | None = None, *, input_size: int = 224,
         aliases: dict | None = None, pretrained: bool = False, seed: int | None = None) -> Model:
    """Any ``torch.nn.Module`` as a ``Model``; ``preprocess`` defaults to resize + ImageNet normalisation."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    if preprocess is None:
        preprocess = Preprocess(input_size)
    elif not callable(preprocess):
        raise ValueError(f"preprocess must be callable (uint8 (N,H,W,3) -> tensor); got {type(preprocess).__name__}")
    size = getattr(preprocess, "size", (input_size, input_size))
    return Model(module=_eval(module), preprocess=preprocess, name=name or type(module).__name__,
                 pretrained=pretrained, aliases=dict(aliases or {}), input_size=tuple(size), seed=seed)


def load(name, pretrained: bool = True, seed: int = 0, **options) -> Model:
    """A network by name: ``<prefix>:<rest>`` (``prefixes()`` lists them) or ``efficientnet_lite0``..``4``.

    ``pretrained=False`` gives the same architecture with random weights drawn from ``seed``
    (the control every analysis needs): bitwise the same weights for the same ``seed``.
    ``options`` go to the loader (``input_size`` for TorchScript files, say). A ``Model`` is
    returned unchanged; an ``nn.Module`` is wrapped.
    """
    if isinstance(name, Model):
        return name
    import torch

    if isinstance(name, torch.nn.Module):
        return wrap(name)
    if not isinstance(name, str):
        raise ValueError(f"name must be a model name (str), a Model or an nn.Module; got {type(name).__name__}")
    if not isinstance(pretrained, bool):
        raise ValueError(f"pretrained must be True or False; got {pretrained!r}")
    seed = _check_seed(seed)
    m = _LITE.match(name)
    if m:
        prefix, rest = "efficientnet_lite", m.group(1)
    elif ":" in name:
        prefix, rest = name.split(":", 1)
    else:
        raise ValueError(
            "name must be '<prefix>:<name>' (e.g. 'torchvision:alexnet', 'timm:resnet18', 'onnx:net.onnx'; "
            f"prefixes: {', '.join(prefixes())}) or 'efficientnet_lite0'..'efficientnet_lite4'; got {name!r}"
        )
    loader = loader_for(prefix)
    _check_options(prefix, loader, rest, pretrained, options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = loader(rest, pretrained=pretrained, **options)
    if not isinstance(model, Model):
        raise TypeError(f"the loader of {prefix!r} returned {type(model).__name__}; it must return a brainlike Model "
                        "(brainlike.models.wrap builds one from an nn.Module)")
    model.pretrained = bool(pretrained)
    model.seed = None if pretrained else seed
    if model.name in (None, "") or model.name == type(model.module).__name__:
        model.name = name
    _eval(model.module)
    return model
