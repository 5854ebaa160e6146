"""Bring your own generator: ``package.module:factory`` plus optional weights.

The factory is called without arguments and returns a ``torch.nn.Module`` with an
int ``latent_dim`` whose ``forward(z)`` maps (B, latent_dim) latents to (B, C, H, W)
images in [-1, 1] (the model space of ``data.preprocess``; a CT generator has C = 1).
Weights, when given, are a safetensors file or a plain state dict read with
``torch.load(weights_only=True)``, which refuses anything but tensors and containers,
so no code in the file runs. The module is checked once at load time with a real
forward pass, so a wrong interface is a clear error here, not a shape error deep
inside direction discovery.

Every tool that takes a generator accepts such a spec: ``latentdirs directions`` and
``baseline`` (``--generator pkg.mod:make_g --generator-weights w.safetensors``), the
directions dock and the latent navigator.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: ``package.module:factory`` (the factory may be an attribute path such as ``Cls.build``)
SPEC = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<factory>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
RANGE_TOLERANCE = 1e-3  # "outside [-1, 1] beyond rounding"
CHECK_BATCH = 2
log = logging.getLogger(__name__)


class CustomGeneratorError(ValueError):
    """A ``module:factory`` generator that cannot be used; the message says why."""


def is_factory_spec(spec: Any) -> bool:
    """True for ``package.module:factory`` (not a file that exists, not ``analytic:32``)."""
    text = str(spec)
    return bool(SPEC.match(text)) and not Path(text).exists()


class CustomGenerator(nn.Module):
    """The user's module behind the interface the tools use (``latent_dim``, ``generate``,
    and ``encode`` when the module has one)."""

    def __init__(self, net: nn.Module, spec: str, fingerprint: str) -> None:
        super().__init__()
        self.net = net
        self.latent_dim = int(net.latent_dim)
        self.spec = spec
        self.fingerprint = fingerprint
        self.meta: dict[str, Any] = {"kind": "custom", "spec": spec, "fingerprint": fingerprint}
        if callable(getattr(net, "encode", None)):
            self.encode = net.encode  # the navigator's "encode CT slice" uses it

    @property
    def first_layer(self) -> nn.Module | None:
        """The layer that reads z, for SeFa and GANSpace: the module's own ``first_layer``,
        else its first Linear / (transposed) convolution with latent_dim inputs."""
        own = getattr(self.net, "first_layer", None)
        if isinstance(own, nn.Module):
            return own
        for m in self.net.modules():
            if isinstance(m, nn.Linear) and m.in_features == self.latent_dim:
                return m
            if isinstance(m, nn.ConvTranspose2d | nn.Conv2d) and m.in_channels == self.latent_dim:
                return m
        return None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def is_factory(obj: Any) -> bool:
    """Only what can be a generator factory is called: a function or method written in Python, or an
    nn.Module class. Built-ins (``sys:exit``, ``os:abort``, ``os:system``) and other callables are not."""
    if inspect.isclass(obj):
        return issubclass(obj, nn.Module)
    if inspect.ismethod(obj):
        obj = obj.__func__
    return inspect.isfunction(obj)


def load_custom_generator(spec: str, weights: str | Path | None = None, device: str | torch.device = "cpu",
                          weights_prefix: str | None = None) -> CustomGenerator:
    """Import ``module``, call ``factory()``, load ``weights``, check the interface.

    ``weights_prefix`` is stripped from the weights' key names (a training wrapper that held the
    network as ``self.net`` saves ``net.*`` keys); without it a prefix is stripped (or added) when
    exactly one makes the names match the module's (``fit_key_prefix``)."""
    m = SPEC.match(str(spec))
    if m is None:
        raise CustomGeneratorError(f"generator spec {spec!r}: expected 'package.module:factory'")
    module_name, attr = m.group("module"), m.group("factory")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CustomGeneratorError(f"generator {spec}: cannot import {module_name} ({exc})") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CustomGeneratorError(f"generator {spec}: {module_name} has no {attr}")
        obj = getattr(obj, part)
    if not is_factory(obj):
        raise CustomGeneratorError(
            f"generator {spec}: {attr} is not a factory (a Python function, or an nn.Module class, that returns "
            f"a torch.nn.Module; got {type(obj).__name__}); it was not called")
    try:
        net = obj()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's factory: report whatever it raised, sys.exit too
        raise CustomGeneratorError(f"generator {spec}: the factory raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(net, nn.Module):
        raise CustomGeneratorError(f"generator {spec}: the factory returned {type(net).__name__}, not a torch.nn.Module")
    digest = hashlib.sha256(f"custom:{spec}".encode())
    if weights is not None and str(weights) not in ("", "."):
        wpath = Path(weights)
        state = fit_key_prefix(read_state_dict(wpath), set(net.state_dict()), weights_prefix,
                               f"generator {spec}: weights {wpath.name}")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CustomGeneratorError(f"generator {spec}: weights {wpath.name} do not fit the module: "
                                       f"{_first_lines(exc)}") from exc
        from ..utils.weights import sha256_file

        digest.update(sha256_file(wpath).encode())
    net.eval().requires_grad_(False)
    check_interface(net, spec)
    return CustomGenerator(net, str(spec), f"custom:{digest.hexdigest()}").to(device)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, or from a torch.save'd state dict without unpickling code."""
    if not path.is_file():
        raise CustomGeneratorError(f"generator weights: no file at {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CustomGeneratorError(f"generator weights {path}: not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the safe unpickler's refusals come as several types
        raise CustomGeneratorError(
            f"generator weights {path}: not a plain state dict that torch.load(weights_only=True) "
            f"accepts ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]  # the common {"state_dict": ..., "epoch": ...} checkpoint
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CustomGeneratorError(f"generator weights {path}: expected a state dict (names -> tensors)")
    return dict(obj)


def _dotted_prefixes(key: str) -> list[str]:
    """``"net.body.0.weight"`` -> ``["net.", "net.body.", "net.body.0."]``."""
    parts = key.split(".")[:-1]
    return [".".join(parts[: i + 1]) + "." for i in range(len(parts))]


def fit_key_prefix(state: dict[str, torch.Tensor], wanted: set[str], prefix: str | None = None,
                   what: str = "weights") -> dict[str, torch.Tensor]:
    """``state`` with its key names matched to the module's (``wanted``).

    With ``prefix`` the keys that start with it are kept, without it (a missing prefix is an error).
    Without ``prefix``: names that already match are returned as they are; else the one dotted
    prefix whose removal from the weights' names (or addition to them) gives exactly the module's
    names is applied. When none does, or several do, the error says so in one line, naming the
    prefix the keys differ by when there is one.
    """
    if prefix:
        p = prefix if prefix.endswith(".") else prefix + "."
        kept = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
        if not kept:
            raise CustomGeneratorError(f"{what}: no key starts with {p!r} (--weights-prefix); they start with "
                                       f"{_common_start(state)}")
        return kept
    have = set(state)
    if have == wanted:
        return state
    strip = sorted({p for k in have for p in _dotted_prefixes(k)
                    if {k2[len(p):] for k2 in have if k2.startswith(p)} == wanted})
    add = sorted({p for k in wanted for p in _dotted_prefixes(k) if {p + k2 for k2 in have} == wanted})
    if len(strip) + len(add) == 1:
        if strip:
            p = strip[0]
            log.info("%s: stripped the key prefix %r (the weights come from a wrapper of the module)", what, p)
            return {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
        log.info("%s: added the key prefix %r to the weights' names", what, add[0])
        return {add[0] + k: v for k, v in state.items()}
    if len(strip) > 1:
        raise CustomGeneratorError(f"{what}: the key prefixes {', '.join(map(repr, strip))} each hold a copy of the "
                                   "module's weights; choose one with --weights-prefix")
    missing, unexpected = sorted(wanted - have), sorted(have - wanted)
    hint = _prefix_hint(missing, unexpected)
    raise CustomGeneratorError(
        f"{what} do not fit the module: {len(missing)} of its {len(wanted)} keys are missing and {len(unexpected)} "
        f"of the {len(have)} keys in the file are not the module's{hint} (e.g. missing {missing[0]!r}, "
        f"unexpected {unexpected[0]!r})" if missing and unexpected else
        f"{what} do not fit the module: " + (f"missing {_few(missing)}" if missing else f"unexpected {_few(unexpected)}"))


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """"; the file's keys differ by the prefix 'net.'" when most unexpected keys are a prefix plus a missing one."""
    counts: dict[str, int] = {}
    gone = set(missing)
    for k in unexpected:
        for p in _dotted_prefixes(k):
            if k[len(p):] in gone:
                counts[p] = counts.get(p, 0) + 1
    if not counts:
        return ""
    p, n = max(counts.items(), key=lambda kv: kv[1])
    return f"; the file's keys differ by the prefix {p!r} ({n} of them are the module's names without it)"


def _common_start(state: dict[str, torch.Tensor]) -> str:
    firsts = sorted({k.split(".")[0] + "." for k in state})
    return ", ".join(map(repr, firsts[:5])) + (" ..." if len(firsts) > 5 else "")


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(map(repr, keys[:n])) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _first_lines(exc: Exception, n: int = 2, width: int = 300) -> str:
    """An exception's message cut to ``n`` lines of at most ``width`` characters (a shape mismatch of
    one tensor, not a list of sixty keys)."""
    lines = str(exc).strip().splitlines()[:n]
    return " ".join(line.strip()[:width] for line in lines)


def check_interface(net: nn.Module, spec: str) -> None:
    """One real forward pass: int ``latent_dim``, (B, C, H, W) float output, values in [-1, 1]."""
    d = getattr(net, "latent_dim", None)
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise CustomGeneratorError(
            f"generator {spec}: the module needs an int attribute latent_dim >= 1 (got {d!r})")
    try:
        device = next(net.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    z = torch.randn(CHECK_BATCH, d, generator=torch.Generator().manual_seed(0)).to(device)
    try:
        with torch.no_grad():
            x = net(z)
    except Exception as exc:  # noqa: BLE001 - the user's forward: report whatever it raised
        raise CustomGeneratorError(f"generator {spec}: forward(z) with z of shape ({CHECK_BATCH}, {d}) raised "
                                   f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != CHECK_BATCH:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise CustomGeneratorError(
            f"generator {spec}: forward(z) must return images of shape (B, C, H, W) = ({CHECK_BATCH}, C, H, W), got {shape}")
    if not x.is_floating_point():
        raise CustomGeneratorError(f"generator {spec}: forward(z) returned {x.dtype}, expected floating-point images")
    if not bool(torch.isfinite(x).all()):
        raise CustomGeneratorError(f"generator {spec}: forward(z) returned NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
        raise CustomGeneratorError(
            f"generator {spec}: images must lie in [-1, 1] (model space), got values in [{lo:.4g}, {hi:.4g}]; "
            "end the network with tanh, or rescale its output")


def resolve_custom(spec: Any, weights: str | Path | None = None, device: str | torch.device = "cpu",
                   weights_prefix: str | None = None) -> tuple[nn.Module, str, str] | None:
    """``(generator, fingerprint, kind)`` for a factory spec, None for anything else
    (the hook ``training.directions.resolve_generator`` calls first)."""
    if not is_factory_spec(spec):
        if weights is not None and str(weights) not in ("", "."):
            raise CustomGeneratorError(f"--generator-weights is for a 'module:factory' generator, not {spec}")
        return None
    g = load_custom_generator(str(spec), weights, device, weights_prefix)
    # the paper's step counts: the VAE's for a module that encodes, else the GAN's
    return g, g.fingerprint, "vae" if hasattr(g, "encode") else "gan"
