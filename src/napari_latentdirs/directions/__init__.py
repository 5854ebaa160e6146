"""Latent directions: the set format, the direction matrix, Voynov & Babenko's method and the
closed-form baselines.

``METHODS`` is the one registry of direction methods: the CLI (``latentdirs baseline --method``),
the directions dock, the jobs and the main job's baselines all read it. Adding a method is one
module with a function ``fn(G, K, *, slices, seed, n_samples, generator) -> DirectionSet`` and
one ``MethodSpec`` line below (or ``register_method`` at run time).

The registry is plain data: a method's function is named as ``"package.module:function"`` and
imported only when the method runs, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: What a method may need besides the generator: real model-space slices to encode, a
#: generator with ``encode(x)`` (a VAE), or a generator exposing ``first_layer``.
NEEDS = ("slices", "encoder", "first_layer")


@dataclass(frozen=True)
class MethodSpec:
    """One direction method.

    ``fn``: ``"package.module:function"`` (or the callable itself) with the signature
    ``fn(G, K, *, slices=None, seed=0, n_samples=2000, generator="") -> DirectionSet``;
    for a learned method, the engine (it trains in a job, not in one call).
    ``learned``: trained (Voynov & Babenko) rather than closed-form.
    ``needs``: inputs besides the generator, from ``NEEDS``.
    ``label``: the name the directions dock shows; ``description``: one line for help texts.
    """

    fn: str | Callable[..., Any]
    learned: bool
    needs: tuple[str, ...]
    description: str
    label: str = ""

    def __post_init__(self) -> None:
        unknown = [n for n in self.needs if n not in NEEDS]
        if unknown:
            raise ValueError(f"unknown needs {unknown}; choose from {NEEDS}")

    def resolve(self) -> Callable[..., Any]:
        if callable(self.fn):
            return self.fn
        module, _, name = self.fn.partition(":")
        return getattr(importlib.import_module(module), name)


_B = "napari_latentdirs.directions.baselines"

#: name -> spec; the order is the order of the dock's list and the CLI's choices.
METHODS: dict[str, MethodSpec] = {
    "voynov": MethodSpec("napari_latentdirs.directions.voynov:train_directions", True, (),
                         "Voynov & Babenko: learn K directions and a reconstructor", "Voynov & Babenko (learned)"),
    "random": MethodSpec(f"{_B}:random_method", False, (), "K random unit directions (seeded)", "random"),
    "ganspace": MethodSpec(f"{_B}:ganspace_method", False, ("first_layer",),
                           "GANSpace: PCA of the first layer's activations over sampled z", "PCA / GANSpace"),
    "sefa": MethodSpec(f"{_B}:sefa_method", False, ("first_layer",),
                       "SeFa: eigenvectors of W^T W of the first layer", "SeFa"),
    "pca-encoded": MethodSpec(f"{_B}:pca_encoded_method", False, ("slices", "encoder"),
                              "PCA of a VAE's encoded real slices", "PCA of encoded slices"),
    "probe-regression": MethodSpec("napari_latentdirs.directions.supervised:probe_regression_method", False, (),
                                   "supervised: each probe factor regressed on z, the others projected out "
                                   "(one labelled direction per factor)", "supervised (probe regression)"),
}


def register_method(name: str, spec: MethodSpec) -> MethodSpec | None:
    """Add (or replace) a method; returns the spec it replaced, if any."""
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"expected a MethodSpec, got {type(spec).__name__}")
    previous = METHODS.get(name)
    METHODS[name] = spec
    return previous


def unregister_method(name: str) -> MethodSpec | None:
    return METHODS.pop(name, None)


def closed_form_methods() -> tuple[str, ...]:
    """Methods computed in one call (``compute_baseline``), in registry order."""
    return tuple(n for n, s in METHODS.items() if not s.learned)


def method_spec(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown direction method {name!r}; choose from {tuple(METHODS)}") from None


__all__ = ["METHODS", "NEEDS", "MethodSpec", "closed_form_methods", "method_spec", "register_method",
           "unregister_method"]
