"""How the main job's numbers were measured, in words the report prints beside them."""

from __future__ import annotations

from typing import Any


def labelling_note(lcfg: Any, probes: Any) -> str:
    return (
        f"Each direction (unit length) shifts {lcfg.n_latents} random latents by alpha in {list(lcfg.alphas)} (the range "
        f"the figures and the navigator show); the '{probes.name}' probes measure {', '.join(probes.factors)}. Effect = "
        "|mean slope| x max alpha in units of the factor's natural SD (slopes fitted on the shifts the probes could "
        f"measure; bootstrap 95% CI over latents); significant effect = the full effect where it exceeds {lcfg.z:g} SE "
        "(t-widened), else 0. Label = top factor if its share of the significant effects not "
        f"explained as its known consequences (selectivity) >= {lcfg.selectivity_threshold:g} and >= "
        f"{100 * lcfg.min_consistency:.0f}% of latents agree on the sign, 'entangled' otherwise, 'no effect' if the top "
        f"significant effect < {lcfg.min_effect:g}. Duplicates: |cos| of effect vectors >= {lcfg.duplicate_effect_corr:g} "
        f"and of image changes >= {lcfg.duplicate_image_corr:g}. Factor cells show significant effects; 'does' "
        "names the top two factors with their signs and shares of the significant effects."
    )


def disentanglement_note(score_samples: int) -> str:
    return (
        f"{score_samples} latents z ~ N(0, I) per generator; factors = the probes on G(z); codes = pinv(A) z "
        "(coordinates along the unit directions). MIG (Chen et al. 2018, 20 histogram bins) beside its noise floor (MIG "
        "against row-shuffled factors); DCI (Eastwood & Williams 2018, LASSO importances; I = test NRMSE, lower is "
        "better) beside DCI D of A orthonormalised (polar factor) and of a random matrix with A's singular values: DCI "
        "follows A's conditioning, so only a D above both controls says something. Selectivity = mean over the factors "
        "of the best selectivity for the factor among directions whose effect on it reaches the floor, one per "
        "duplicate group. Eff. rank = participation ratio of A's singular values; dup. = groups of columns with "
        "|cos| >= 0.9."
    )


def comparison_note(learned_rca: float, n_boot: int, random_sets: int = 10, min_effect: float = 0.3) -> str:
    return (
        "Per cell (generator, reconstructor, A configuration; its discovery seeds together) against "
        f"{random_sets} random sets of the same generator and the same K (unit columns), all measured on the same "
        "latents. Per factor: the best selectivity for that factor over all directions of a set whose significant "
        f"effect on it reaches {min_effect:g} natural SDs at the largest shift, one direction per duplicate group (0 "
        f"when none), averaged over the sets of each group. {n_boot} paired bootstrap replicates: the latents resampled "
        "jointly for all sets, the sets' scatter resampled from both groups' residuals pooled; two-sided bootstrap p, "
        "Holm-corrected across the factors (a factor beats random when its Holm p < 0.05; the 95% interval beside it is "
        "uncorrected). 'At equal image change': each discovered set relabelled with its shifts rescaled so that it "
        "changes the image as much as the random sets on average. Only sets whose reconstructor accuracy (RCA) "
        f"reached {learned_rca:g} count as discovered; the others are listed as not learned."
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
