"""Named training recipes: complete sets of config overrides for the GAN and the VAE.

``paper`` is the paper's recipe exactly (the dataclass defaults of
``training.config`` and ``DirectionsConfig``). ``cpu`` is what trains a generator that draws the
phantom's anatomy on a 2-core CPU in about an hour; every difference from the
paper is listed in the README ("The CPU recipe"), and the recipe search that
chose it is recorded in ``training/recipe_search.md``.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"gan": {}, "vae": {}},
    "cpu": {
        "gan": {
            "preset": "cpu",  # G width 16, D width 8 without BatchNorm, minibatch std
            "batch_size": 32,
            "lr": 1e-4,
            "betas": (0.0, 0.99),
            "label_smooth": (1.0, 1.0),  # R1 replaces label smoothing and instance noise
            "instance_noise": 0.0,
            "r1_gamma": 1.0,
            "r1_every": 4,
            "ema": 0.999,
            "recalibrate_bn": True,
            "augment": False,  # fresh phantom slices; no need to stretch the data
            "fid": False,  # Inception on a CPU costs more than the training; quality is measured after
        },
        "vae": {
            "preset": "cpu",  # width 8
            "batch_size": 32,
            "lr": 1e-3,
            "ema": 0.999,
            "recalibrate_bn": True,
            "augment": False,
            "fid": False,
        },
    },
}


#: Direction discovery (``DirectionsConfig`` overrides). ``cpu``: LeNet sees the pair at 64x64
#: and learns at lr 3e-3, which reaches RCA 0.9 at K = 32 in about 700 steps on the demo
#: generators (the paper's 1e-4 at 128x128 needs its 25,000).
DIRECTION_RECIPES: dict[str, dict[str, Any]] = {
    "paper": {},
    # ortho: the method study of issue 18 (training/method_study.md) found unit columns collapsing to an
    # effective rank of about 7 of 32 at every step count and with the orthogonal-changes penalty;
    # orthonormal columns keep all 32 distinct and reached the same RCA.
    "cpu": {"reconstructor": "lenet", "reconstructor_input": 64, "lr": 3e-3, "batch_size": 32, "steps": 800,
            "eval_batches": 16, "variant": "ortho"},
}


def direction_recipe(name: str) -> dict[str, Any]:
    if name not in DIRECTION_RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(DIRECTION_RECIPES)}")
    return dict(DIRECTION_RECIPES[name])


def recipe(name: str, kind: str) -> dict[str, Any]:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    if kind not in RECIPES[name]:
        raise ValueError(f"unknown model kind {kind!r}; expected 'gan' or 'vae'")
    return dict(RECIPES[name][kind])
