"""The main job's analysis of a finished run: labels, the discovered-versus-random comparison,
scores, figures, interpolation and memorization -> ``analysis/summary.json``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..console import Progress
from ..utils.atomic import atomic_write_text
from ..utils.paths import from_run, plain_name, rel_to
from ..utils.weights import json_default
from . import notes
from .config import PipelineConfig
from .manifest import Manifest, Timer
from .showcase import main_set, sample_figure, showcase


def _load_slices(cache: Path, split: str, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` slices (N, H, W) of one split of the slice cache, a seeded random subset."""
    from ..data.cache import SliceCache

    sc = SliceCache(cache)
    try:
        rows = np.asarray(sc.indices(split))
        if rows.size == 0:
            return np.zeros((0, 128, 128), np.float32)
        pick = np.sort(np.random.default_rng(seed).choice(rows, size=min(n, rows.size), replace=False))
        x = np.asarray(sc.read_many([int(i) for i in pick]), dtype=np.float32)
    finally:
        sc.close()
    return x.reshape(x.shape[0], *x.shape[-2:])


def _saved_config(run: Path, man: Manifest) -> PipelineConfig:
    saved = dict(man.data.get("config", {}))
    return PipelineConfig.from_dict({**saved, "out": str(run)}) if saved else PipelineConfig(out=str(run))


def _check_entries(run: Path, man: Manifest) -> None:
    """Every name and path in the manifest lies inside the run (issue 22): checked before
    anything is read or written, so a hostile or hand-edited run changes nothing outside it."""
    where = f"{run / 'manifest.json'}:"
    for kind, gen in man.data.get("generators", {}).items():
        from_run(run, gen.get("path"), f"{where} generators[{kind!r}].path")
    for name, info in man.data.get("sets", {}).items():
        plain_name(name, f"{where} the set name {name!r}")  # it names analysis/labels/<name>.json
        from_run(run, info.get("path"), f"{where} sets[{name!r}].path")
    if man.data.get("cache"):
        from_run(run, man.data["cache"], f"{where} cache")


def analyse(run: str | Path, cfg: PipelineConfig | None = None, probes: Any = None, progress: bool | None = None) -> Path:
    """Labels, comparison, scores, figures, interpolation and memorization for a finished run."""
    from ..analysis.figures import CT_WINDOW, FULL_RANGE
    from ..analysis.labelling import LabelConfig, generate_images
    from ..models.registry import load_generator
    from ..probes.phantom import phantom_probes

    run = Path(run)
    man = Manifest(run)
    _check_entries(run, man)
    cfg = cfg or _saved_config(run, man)
    prog = Progress(cfg.progress if progress is None else progress)
    gens = {k: load_generator(from_run(run, v["path"])) for k, v in man.data["generators"].items()}
    if probes is None:
        from ..models.registry import preprocessing_of

        preps = [preprocessing_of(G) for G in gens.values()]
        probes = phantom_probes(preps[0] if preps and all(p == preps[0] for p in preps) else None)
    adir, rdir = run / "analysis", run / "report"
    (adir / "labels").mkdir(parents=True, exist_ok=True)
    rdir.mkdir(parents=True, exist_ok=True)
    tm_all = Timer()
    window = CT_WINDOW if probes.name == "phantom" else FULL_RANGE
    lcfg = LabelConfig(n_latents=cfg.label_latents, alphas=tuple(cfg.label_alphas), n_boot=cfg.label_boot, seed=cfg.seed)
    summary: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": cfg.preset,
        "data": man.data.get("data", {}),
        "generators": man.data["generators"],
        "quality": man.data.get("quality", {}),
        "warnings": [],
        "figures": {"gifs": []},
        "labelling_note": notes.labelling_note(lcfg, probes),
        "disentanglement_note": notes.disentanglement_note(cfg.score_samples),
        "comparison_note": notes.comparison_note(cfg.learned_rca, cfg.compare_boot, cfg.random_sets, lcfg.min_effect),
    }
    rng = np.random.default_rng(cfg.seed + 1)
    base: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind, G in gens.items():
        prog.stage(f"measuring {cfg.score_samples} {kind.upper()} samples with the {probes.name} probes")
        z = rng.standard_normal((cfg.score_samples, G.latent_dim)).astype(np.float32)
        base[kind] = (z, probes(generate_images(G, z)))

    sets_out, labels_by_set = _label_and_score(run, man, cfg, gens, base, probes, lcfg, prog, summary)
    summary["direction_sets"] = sets_out
    summary["comparison"] = _compare(run, sets_out, labels_by_set, probes, cfg, summary, gens, lcfg, prog)
    summary["factors_found"] = {s["name"]: s["found"] for s in sets_out if s.get("learned", True)}
    summary["table1"] = _table1(sets_out)
    if cfg.preset == "tiny":
        summary["table1_note"] = notes.cpu_table1_note(cfg.reconstructor_input, cfg.direction_steps, cfg.direction_seeds)
    zp = _z_position(sets_out, labels_by_set, probes)
    if zp:
        summary["z_position"] = zp
    _figures(run, man, cfg, gens, sets_out, labels_by_set, rdir, window, summary, prog)
    _interpolation_and_memorization(run, man, cfg, gens, rdir, window, summary, prog)
    man.record("analysis", tm_all)
    summary["timings"] = man.data["timings"]
    summary["cpu_seconds"] = man.data.get("cpu_seconds", {})
    man.save()
    path = adir / "summary.json"
    atomic_write_text(path, json.dumps(summary, indent=1, default=json_default))
    return path


def _label_and_score(run, man, cfg, gens, base, probes, lcfg, prog, summary):
    from ..analysis.disentanglement import scores_with_controls
    from ..analysis.labelling import LabelResult, describe_directions, label_directions
    from ..directions.collapse import collapse_of
    from ..directions.set import NOT_LEARNED, DirectionSet
    from ..probes.factors import PAPER_FACTORS

    sets_out: list[dict[str, Any]] = []
    labels_by_set: dict[str, LabelResult] = {}
    fresh = _label_in_workers(run, man, cfg, probes, lcfg, prog)
    for name, info in man.data["sets"].items():
        G = gens.get(info["generator"])
        if G is None or not from_run(run, info["path"]).exists():
            summary["warnings"].append(f"direction set {name} skipped: generator or file missing")
            continue
        ds_path = from_run(run, info["path"])
        ds = DirectionSet.load(ds_path)
        lpath = run / "analysis" / "labels" / f"{name}.json"
        if lpath.exists() and name not in fresh:
            res = LabelResult.load(lpath)
        else:
            if lpath.exists():
                res = LabelResult.load(lpath)
            else:
                prog.stage(f"labelling {name} (K={ds.K})")
                res = label_directions(G, ds, probes, lcfg, progress=prog.loop(ds.K, f"label {name}"))
                res.save(lpath)
            # The set carries its labels and its run, so the navigator shows them when it is opened.
            DirectionSet(ds.A, ds.method, ds.generator, list(res.labels), dict(ds.metrics),
                         {**ds.meta, "run": run.name, "set": name, "label_alphas": list(lcfg.alphas),
                             "selectivity": res.selectivity.tolist(),
                             "descriptions": describe_directions(res)}).save(ds_path)
        labels_by_set[name] = res
        z, V = base[info["generator"]]
        ok = np.all(np.isfinite(V), axis=1)
        row: dict[str, Any] = {**info, "path": rel_to(run, ds_path), "K": ds.K, "method": ds.method,
                               "labels_path": rel_to(run, lpath), "valid_fraction": res.valid_fraction}
        row.pop("direction_config", None)
        if info.get("kind") == "discovered" and not info.get("learned", True):
            summary["warnings"].append(
                f"{name}: {NOT_LEARNED} (RCA {info.get('rca', 0):.3f} < {cfg.learned_rca:g}; chance {1 / ds.K:.3f}). "
                "It is left out of the factors found and of the comparison with random directions")
        if res.valid_fraction < 0.5:
            summary["warnings"].append(
                f"{name}: the {probes.name} probes accepted only {100 * res.valid_fraction:.0f}% of the generator's samples "
                "(no body-like image): its labels and scores carry little meaning")
        row["collapse"] = collapse_of(ds.A).to_dict()
        # Scores with their controls for every set but the 2nd.. random sets of a K (they would repeat the first).
        if info.get("method") != "random" or int(info.get("seed", 0)) == 0:
            try:
                if ok.sum() < 20:
                    raise ValueError(f"only {int(ok.sum())} of {len(ok)} samples could be measured")
                row.update(scores_with_controls(z[ok], V[ok], ds.A, seed=cfg.seed))
            except ValueError as exc:
                summary["warnings"].append(f"{name}: scores not computed ({exc})")
        fsel = res.factor_selectivity()
        row["selectivity"] = float(np.mean(list(fsel.values())))
        row["selectivity_per_factor"] = fsel
        row["found"] = {f: v for f, v in res.found().items() if f in PAPER_FACTORS}
        row["n_found"] = len(row["found"])
        row["duplicate_groups"] = len(res.groups)
        row["table_rows"] = 40 if ds.K <= 40 else 30
        sets_out.append(row)
    return sets_out, labels_by_set


def _label_one(gfile: str, ds_path: str, lpath: str, lcfg: dict[str, Any], preprocessing: dict[str, Any]) -> str:
    """Label one set in a worker process (module level: it must pickle under spawn)."""
    import torch

    from ..analysis.labelling import LabelConfig, label_directions
    from ..data.preprocess import Preprocessing
    from ..directions.set import DirectionSet
    from ..models.registry import load_generator
    from ..probes.phantom import phantom_probes

    torch.set_num_threads(1)
    probes = phantom_probes(Preprocessing.from_dict(preprocessing))
    res = label_directions(load_generator(gfile), DirectionSet.load(ds_path), probes,
                           LabelConfig(**{**lcfg, "alphas": tuple(lcfg["alphas"])}))
    res.save(lpath)
    return lpath


def _label_in_workers(run: Path, man: Manifest, cfg: PipelineConfig, probes: Any, lcfg: Any, prog: Progress) -> set[str]:
    """Label the sets that have no label file yet, ``cfg.workers`` at a time on a CPU; returns their names.
    Only the phantom probes go to workers (other probe sets are labelled in this process)."""
    from dataclasses import asdict

    from ..models.registry import preprocessing_of
    from .stages import parallel_on_cpu

    todo = []
    for name, info in man.data["sets"].items():
        lpath = run / "analysis" / "labels" / f"{name}.json"
        gen = man.data["generators"].get(info["generator"])
        if not lpath.exists() and gen is not None and from_run(run, info["path"]).exists():
            todo.append((name, str(from_run(run, gen["path"])), str(from_run(run, info["path"])), str(lpath)))
    if len(todo) < 2 or probes.name != "phantom" or not parallel_on_cpu(cfg):
        return set()
    from ..utils.processes import completed, worker_pool

    prog.stage(f"labelling {len(todo)} direction sets, {cfg.workers} at a time")
    prep = preprocessing_of(todo[0][1]).to_dict()
    with worker_pool(cfg.workers) as pool:  # workers die with this process (Ctrl-C, SIGTERM, kill)
        futures = [pool.submit(_label_one, g, d, lp, asdict(lcfg), prep) for _, g, d, lp in todo]
        for fut in completed(futures):  # a signal ends the wait safely (see utils.processes.completed)
            fut.result()
    return {t[0] for t in todo}


def _cells(sets_out: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Discovered sets by cell (generator, reconstructor, configuration), seeds together."""
    out: dict[str, list[dict[str, Any]]] = {}
    for s in sets_out:
        if s.get("kind") == "discovered":
            out.setdefault(f"{s['generator']}-{s.get('reconstructor')}-{s.get('config')}", []).append(s)
    return out


def _compare(run, sets_out, labels_by_set, probes, cfg, summary, gens, lcfg, prog) -> dict[str, Any]:
    """Every cell's learned sets (its seeds) against the random sets of the same generator and K; as measured
    and, with ``cfg.equal_change``, at equal image change. No pooled "discovered" group."""
    from ..analysis.comparison import compare_sets

    out: dict[str, Any] = {}
    for key, disc in _cells(sets_out).items():
        kind, K = disc[0]["generator"], int(disc[0]["K"])
        learned = [s for s in disc if s.get("learned", True)]
        rand = [s for s in sets_out if s["generator"] == kind and s.get("method") == "random" and int(s["K"]) == K]
        entry: dict[str, Any] = {"generator": kind, "reconstructor": disc[0].get("reconstructor"),
                                 "cell": disc[0].get("config"), "K": K, "discovered": [s["name"] for s in learned],
                                 "random": [s["name"] for s in rand], "not_learned": [s["name"] for s in disc if s not in learned]}
        if learned and rand:
            d_res = [labels_by_set[s["name"]] for s in learned]
            r_res = [labels_by_set[s["name"]] for s in rand]
            try:
                cmp = compare_sets(d_res, r_res, probes, n_boot=cfg.compare_boot, seed=cfg.seed)
            except ValueError as exc:
                summary["warnings"].append(f"{key}: comparison with random directions not computed ({exc})")
            else:
                entry.update(cmp.to_dict())
                if cfg.equal_change:
                    try:
                        entry["equal_change"] = _equal_change(run, learned, d_res, r_res, gens[kind], probes, cfg,
                                                              lcfg, prog)
                    except ValueError as exc:
                        summary["warnings"].append(f"{key}: equal-image-change comparison not computed ({exc})")
        elif disc:
            summary["warnings"].append(f"{key}: no learned direction set to compare with random directions")
        if not rand:
            summary["warnings"].append(f"{key}: no random set with K = {K} to compare with")
        out[key] = entry
    return out


def _equal_change(run, learned, d_res, r_res, G, probes, cfg, lcfg, prog) -> dict[str, Any]:
    """Relabel each learned set with its shifts rescaled to the random sets' mean image change, then compare."""
    from dataclasses import replace

    from ..analysis.comparison import compare_sets, equal_change_scale
    from ..analysis.labelling import LabelResult, label_directions
    from ..directions.set import DirectionSet

    target = float(np.mean([r.image_change.mean() for r in r_res]))
    a_max = float(np.max(np.abs(lcfg.alphas)))
    scaled, scales = [], {}
    for s, res in zip(learned, d_res, strict=True):
        ds = DirectionSet.load(from_run(run, s["path"]))
        scale = equal_change_scale(G, ds.A, target, a_max, n_latents=lcfg.n_latents, seed=lcfg.seed)
        alphas = tuple(float(a * scale) for a in lcfg.alphas)
        lpath = run / "analysis" / "labels" / f"{s['name']}@equal-change.json"
        old = LabelResult.load(lpath) if lpath.exists() else None
        if old is None or not np.allclose(old.config.get("alphas", ()), alphas):
            prog.stage(f"labelling {s['name']} at equal image change (shifts x {scale:.2f})")
            old = label_directions(G, ds, probes, replace(lcfg, alphas=alphas))
            old.save(lpath)
        scaled.append(old)
        scales[s["name"]] = {"scale": scale, "image_change": float(res.image_change.mean()),
                             "image_change_scaled": float(old.image_change.mean())}
    cmp = compare_sets(scaled, r_res, probes, n_boot=cfg.compare_boot, seed=cfg.seed)
    return {**cmp.to_dict(), "target_image_change": target, "scales": scales}


def _table1(sets_out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from ..paper import PAPER_TABLE1

    rows = []
    for s in sets_out:
        if s.get("kind") != "discovered":
            continue
        paper = PAPER_TABLE1.get((s["generator"], s["reconstructor"], s["config"]), (None, None))
        rows.append({"name": s["name"], "generator": s["generator"], "reconstructor": s["reconstructor"],
                     "config": s["config"], "seed": s.get("seed"), "rca": s.get("rca"), "ls": s.get("ls"),
                     "chance": s.get("chance"), "learned": s.get("learned", True), "paper_rca": paper[0],
                     "paper_ls": paper[1], "steps": s.get("steps")})
    return rows


def _z_position(sets_out, labels_by_set, probes) -> dict[str, Any] | None:
    """The discovered direction that moves the anatomical level most, beside the random sets' best."""
    if "z_level" not in probes.factors:
        return None
    j = probes.factors.index("z_level")
    best = None
    for s in sets_out:
        if s.get("kind") != "discovered" or not s.get("learned", True):
            continue
        res = labels_by_set[s["name"]]
        for k in range(res.K):
            cand = (res.significant[k, j] * (1.0 if res.labels[k] == "z_level" else 0.5), s["name"], k)
            if best is None or cand[0] > best[0]:
                best = cand
    if best is None:
        return None
    rand_eff = [float(labels_by_set[s["name"]].significant[:, j].max()) for s in sets_out if s.get("method") == "random"]
    _, sname, k = best
    res = labels_by_set[sname]
    return {"set": sname, "direction": int(k), "effect": float(res.effects[k, j]), "significant": float(res.significant[k, j]),
            "ci": [float(res.ci_low[k, j]), float(res.ci_high[k, j])], "consistency": float(res.consistency[k]),
            "selectivity": float(res.selectivity[k]), "label": res.labels[k], "top_factor": res.top_factor[k],
            "random_effect": max(rand_eff) if rand_eff else float("nan")}


def _figures(run, man, cfg, gens, sets_out, labels_by_set, rdir, window, summary, prog) -> None:
    from ..analysis import figures as figs
    from ..directions.set import DirectionSet

    prog.stage("rendering figures")
    fig = summary["figures"]
    fig["samples"] = sample_figure(gens, rdir / "samples.png", window, cfg.seed).name
    for kind, G in gens.items():
        main = main_set(sets_out, kind)
        if main is None:
            continue
        res = labels_by_set[main["name"]]
        ds = DirectionSet.load(from_run(run, main["path"]))
        ks, labs = showcase(res)
        fig[f"fig2_{kind}"] = figs.fig_direction_grid(G, ds.A, ks, labs, rdir / f"fig2_{kind}.png", seed=cfg.seed,
                                                     window=window, title=f"{kind.upper()}: {main['name']}").name
        # the report's caption says what the rows are: factors found first, then the best-ranked others
        best_per_factor = {int(v["direction"]) for v in res.found().values()}
        fig[f"fig2_{kind}_rows"] = {"found": sum(k in best_per_factor for k in ks), "rows": len(ks)}
        rand = next((s for s in sets_out if s["generator"] == kind and s.get("method") == "random"), None)
        if rand is not None:
            top, top_labs = showcase(res, 5)
            key = "fig9" if kind == "gan" else "fig10"
            fig[key] = figs.fig_random_vs_discovered(G, DirectionSet.load(from_run(run, rand["path"])).A, ds.A,
                                                     rdir / f"{key}_{kind}.png", ks_found=top, seed=cfg.seed, window=window,
                                                     labels_found=top_labs,
                                                     title=f"{kind.upper()}: {rand['name']} (left) vs {main['name']} (right)").name
        if kind == "vae":
            for k, lab in list(zip(ks, labs))[: cfg.gifs]:
                gif = figs.direction_gif(G, ds.A[:, k] / np.linalg.norm(ds.A[:, k]), rdir / f"gif_{kind}_{k}.gif", n=3,
                                         frames=cfg.gif_frames, seed=cfg.seed, window=window)
                fig["gifs"].append({"file": gif.name, "caption": f"{main['name']} {lab}"})
    zp = summary.get("z_position")
    if zp:
        G = gens[man.data["sets"][zp["set"]]["generator"]]
        d = DirectionSet.load(from_run(run, man.data["sets"][zp["set"]]["path"])).A[:, zp["direction"]]
        fig["fig8"] = figs.fig_latents_along(G, d / np.linalg.norm(d), rdir / "fig8_z_position.png", n=cfg.fig8_latents,
                                             seed=cfg.seed, window=window,
                                             title=f"z-position: {zp['set']} #{zp['direction']}").name


def _interpolation_and_memorization(run, man, cfg, gens, rdir, window, summary, prog) -> None:
    from ..analysis import figures as figs
    from ..analysis.interpolation import interpolate
    from ..analysis.inversion import InversionConfig
    from ..analysis.labelling import generate_images
    from ..analysis.memorization import memorization

    cache = from_run(run, man.data["cache"]) if man.data.get("cache") else None
    if cache is None or not cache.exists():
        return
    try:
        train = _load_slices(cache, "train", 4000, cfg.seed)
        test = _load_slices(cache, "test", max(cfg.memorization_samples, 2), cfg.seed)
    except (ImportError, OSError, ValueError, KeyError) as exc:
        summary["warnings"].append(f"slice cache unreadable: {exc}")
        return
    if len(test) < 2 or len(train) < 1:
        summary["warnings"].append("no held-out slices: interpolation and memorization skipped")
        return
    summary["interpolation"], summary["memorization"] = {}, {}
    icfg = InversionConfig(restarts=cfg.inversion_restarts, steps=cfg.inversion_steps, seed=cfg.seed)
    pair = test[[0, len(test) // 2]]
    for kind, G in gens.items():
        prog.stage(f"interpolation and memorization, {kind.upper()}")
        it = interpolate(G, pair, steps=cfg.interp_steps, cfg=icfg)
        f11 = figs.fig_interpolation(it.originals, it.frames, rdir / f"fig11_{kind}.png", window=window,
                                     title=f"{kind.upper()} interpolation between two held-out slices")
        summary["interpolation"][kind] = {"figure": f11.name, "method": it.embedding.method,
                                          "mse": [float(v) for v in it.embedding.mse], "smoothness": it.smoothness,
                                          **texture_and_hu(G, it)}
        zs = np.random.default_rng(cfg.seed + 2).standard_normal((cfg.memorization_samples, G.latent_dim)).astype(np.float32)
        m = memorization(generate_images(G, zs), train, test)
        summary["memorization"][kind] = {"generated_median": m.generated_median, "heldout_median": m.heldout_median,
                                         "ratio": m.ratio, "copies": m.copies, "train_slices": int(len(train)),
                                         "heldout_slices": int(len(test))}


def texture_and_hu(G: Any, it: Any) -> dict[str, float]:
    """What pixel MSE does not say about an interpolation: the embedding error as an RMS in HU under
    the generator's window, and the checkerboard index of the path's frames (grid-pattern power over
    that of the two real slices; about 1 for real CT). Pixel error is dominated by air and the body
    outline, so a grainy GAN image can score a lower MSE than a blurred VAE image that looks closer
    to the slice; the checkerboard index measures the texture the eye sees."""
    from ..analysis.quality import checkerboard_index
    from ..models.registry import preprocessing_of

    prep = preprocessing_of(G)
    half_range = float(prep.model_to_hu(np.float32(1.0)) - prep.model_to_hu(np.float32(-1.0))) / 2
    return {"rms_hu": [float(np.sqrt(max(v, 0.0)) * half_range) for v in it.embedding.mse],
            "checkerboard": float(checkerboard_index(it.frames, it.originals).generated)}
