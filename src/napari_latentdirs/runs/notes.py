"""How the main job's numbers were measured, in words the report prints beside them."""

from __future__ import annotations

from typing import Any


def labelling_note(lcfg: Any, probes: Any) -> str:
    return (
        f"Each direction (unit length) shifts {lcfg.n_latents} random latents by alpha in {list(lcfg.alphas)} (the range "
        f"the figures and the navigator show); the '{probes.name}' probes measure {', '.join(probes.factors)}. Effect = "
        "|mean slope| x max alpha in units of the factor's natural SD (bootstrap 95% CI over latents); significant "
        f"effect = effect - {lcfg.z:g} SE (t-widened). Label = top factor if its share of the significant effects not "
        f"explained as its known consequences (selectivity) >= {lcfg.selectivity_threshold:g} and >= "
        f"{100 * lcfg.min_consistency:.0f}% of latents agree on the sign, 'entangled' otherwise, 'no effect' if the top "
        f"significant effect < {lcfg.min_effect:g}. Duplicates: |cos| of effect vectors >= {lcfg.duplicate_effect_corr:g} "
        f"and of image changes >= {lcfg.duplicate_image_corr:g}. Factor cells show significant effects."
    )


def disentanglement_note(score_samples: int) -> str:
    return (
        f"{score_samples} latents z ~ N(0, I) per generator; factors = the probes on G(z); codes = pinv(A) z "
        "(coordinates along the unit directions). MIG (Chen et al. 2018, 20 histogram bins), DCI (Eastwood & Williams "
        "2018, LASSO importances; I = test NRMSE, lower is better), selectivity = mean over the factors of the best "
        "labeller selectivity among directions whose top factor it is (0 when none)."
    )


def comparison_note(learned_rca: float, n_boot: int) -> str:
    return (
        "Per factor: the best selectivity any direction of a set reaches for it (0 when no direction's top factor is "
        "that factor), averaged over the discovered sets and over the matched random sets (same generator, same K, "
        f"unit columns, one per discovery seed). The 95% interval of the difference comes from {n_boot} hierarchical "
        "bootstrap resamples (sets, then the latents each direction was measured on). Only sets whose reconstructor "
        f"accuracy (RCA) reached {learned_rca:g} count as discovered; the others are listed as not learned."
    )


def cpu_table1_note(reconstructor_input: int | None, steps: dict[str, dict[str, int]], seeds: tuple[int, ...]) -> str:
    size = f"{reconstructor_input}x{reconstructor_input}" if reconstructor_input else "full size"
    per_gen = ", ".join(f"{g.upper()} {s.get('lenet')}" for g, s in steps.items() if s.get("lenet"))
    return (
        f"CPU preset: LeNet that sees the pair area-averaged to {size}, Adam 3e-3, batch 32, {per_gen} steps, "
        f"seeds {', '.join(map(str, seeds))}, on the bundled demo generators (trained on fresh phantom slices "
        "with the CPU recipe). The paper trains 50 epochs on LIDC-IDRI and 3,000-250,000 direction iterations at "
        "128x128. Run with --data LIDC_ROOT --preset paper on a GPU for the paper's grid."
    )
