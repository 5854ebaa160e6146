"""Label a direction set file in place: the core of ``latentdirs label`` and of the directions
dock's Label step (one function, two shells).

``label_set(generator, set_path)`` measures every direction of the set with a probe set
(``analysis.labelling.label_directions``), writes the labels, the per-direction selectivity and
descriptions into the set (atomically: the previous file stays whole until the new one is
complete) and the full measurement beside it as ``<set stem>.labels.json``. Which probes
measure the images is part of the answer:

- ``"phantom"``: the phantom's anatomical outline probes (width ... z_level), for CT-like
  generators (the DCGAN, the VAE, a user's ``module:factory`` CT generator), decoding to HU
  with the generator's recorded window;
- ``"ellipse"``: the analytic ellipse generator's probes (``--generator analytic``);
- ``"auto"`` (default): ellipse probes for the analytic generator, phantom probes otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..directions.set import DirectionSet
from ..probes.base import ProbeSet
from .labelling import LabelConfig, LabelResult, describe_directions, label_directions

PROBE_CHOICES = ("auto", "phantom", "ellipse")
#: What each probe set is, in the words a message uses.
PROBE_TEXT = {
    "phantom": "phantom probes (anatomical outline measurements; CT-like generators)",
    "ellipse": "ellipse probes (the analytic ellipse generator's factors)",
}
#: The shifts labels are measured at: the range the figures and the navigator show (as the main job).
LABEL_ALPHAS = (-6.0, -3.0, 3.0, 6.0)
DEFAULT_LATENTS = 32
#: Below this share of samples accepted by the probes, the labels carry little meaning.
MIN_VALID_FRACTION = 0.5


@dataclass
class LabelledSet:
    """What :func:`label_set` did: the set as saved (labels in ``directions.labels``), the full
    measurement, the probe set used and warnings for the reader (printed first by the CLI)."""

    directions: DirectionSet
    result: LabelResult
    probes: str  # "phantom" | "ellipse"
    path: Path  # the direction set file, rewritten with its labels
    labels_path: Path  # <stem>.labels.json: the LabelResult
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Directions per label kind: selective (a factor's name), entangled, no effect."""
        res = self.result
        return {"selective": sum(lab in res.factors for lab in res.labels),
                "entangled": res.labels.count("entangled"), "no effect": res.labels.count("no effect")}

    def summary_lines(self) -> list[str]:
        """Warnings first, then what was measured and how many directions got a factor's name."""
        c = self.counts()
        lines = [f"warning: {w}" for w in self.warnings]
        lines.append(f"labelled {self.result.K} directions of {self.path} with {PROBE_TEXT[self.probes]}")
        lines.append(f"{c['selective']} selective, {c['entangled']} entangled, {c['no effect']} without effect")
        found = self.result.found()
        if found:
            lines.append("factors found: " + ", ".join(f"{f} #{v['direction']} (selectivity {v['selectivity']:.2f})"
                                                      for f, v in found.items()))
        lines.append(f"labels saved in {self.path}; measurements in {self.labels_path}")
        return lines


def probe_set_for(generator: Any, choice: str = "auto") -> tuple[ProbeSet, str]:
    """``(probe set, its name)`` for ``choice`` in :data:`PROBE_CHOICES` (see the module docstring).
    ``auto`` is the rule supervised directions use too (``directions.supervised.probes_for``)."""
    if choice not in PROBE_CHOICES:
        raise ValueError(f"probes must be one of {', '.join(PROBE_CHOICES)}, got {choice!r}")
    if choice == "auto":
        from ..directions.supervised import probes_for

        chosen = probes_for(generator)
        return chosen, chosen.name
    if choice == "ellipse":
        from ..probes.ellipse import ellipse_probes

        return ellipse_probes(), choice
    from ..models.registry import preprocessing_of
    from ..probes.phantom import phantom_probes

    return phantom_probes(preprocessing_of(generator)), choice


def labels_path_of(set_path: str | Path) -> Path:
    """Where :func:`label_set` writes the LabelResult of ``set_path``: ``<stem>.labels.json`` beside it."""
    p = Path(set_path)
    return p.with_name(p.name.removesuffix(".safetensors") + ".labels.json")


def label_set(generator: Any, set_path: str | Path, *, probes: str = "auto", n_latents: int = DEFAULT_LATENTS,
              seed: int = 0, alphas: tuple[float, ...] = LABEL_ALPHAS,
              progress: Callable[[int, int], None] | None = None) -> LabelledSet:
    """Label every direction of the set at ``set_path`` for ``generator`` (a loaded generator:
    ``directions.voynov.resolve_generator(spec)[0]``) and save it with its labels.

    ``probes``: ``"auto"``, ``"phantom"`` or ``"ellipse"``; ``n_latents`` random latents
    (seeded by ``seed``) are shifted by each of ``alphas`` along every unit direction;
    ``progress(done, K)`` is called after each direction. The set file is rewritten
    atomically with ``labels``, ``meta["descriptions"]``, ``meta["selectivity"]`` and
    ``meta["labelling"]`` (probes, latents, shifts, seed); the LabelResult goes to
    :func:`labels_path_of`. Raises ValueError for a set of another latent size.
    """
    set_path = Path(set_path)
    ds = DirectionSet.load(set_path)
    if ds.latent_dim != int(generator.latent_dim):
        raise ValueError(f"{set_path}: the set has latent size {ds.latent_dim}, the generator {generator.latent_dim}")
    if n_latents < 4:
        raise ValueError(f"at least 4 latents are needed to test an effect over latents, got {n_latents}")
    probe_set, name = probe_set_for(generator, probes)
    warnings: list[str] = []
    if (w := ds.not_learned()) is not None:
        warnings.append(w)
    if (other := ds.made_for_another(str(getattr(generator, "fingerprint", "") or ""))) is not None:
        warnings.append(f"{other}: its labels describe this generator's images")
    cfg = LabelConfig(n_latents=n_latents, alphas=tuple(float(a) for a in alphas), seed=seed)
    res = label_directions(generator, ds, probe_set, cfg, progress=progress)
    if res.valid_fraction < MIN_VALID_FRACTION:
        warnings.append(f"the {name} probes could measure only {100 * res.valid_fraction:.0f}% of the generator's "
                        "samples (no body-like image): the labels carry little meaning")
    labelled = DirectionSet(ds.A, ds.method, ds.generator, list(res.labels), dict(ds.metrics),
                            {**ds.meta, "descriptions": describe_directions(res),
                             "selectivity": [float(v) for v in res.selectivity],
                             "label_alphas": list(cfg.alphas),
                             "labelling": {"probes": name, "n_latents": n_latents, "seed": seed,
                                           "alphas": list(cfg.alphas),
                                           "labels_file": labels_path_of(set_path).name}},
                            ds.preprocessing)
    lpath = res.save(labels_path_of(set_path))
    labelled.save(set_path)
    return LabelledSet(labelled, res, name, set_path, lpath, warnings)
