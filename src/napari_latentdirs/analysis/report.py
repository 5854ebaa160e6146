"""The run report: one self-contained HTML file (inline CSS, no scripts, no
network) with its PNG figures and GIF animations beside it.

Everything shown is read from ``<run>/analysis/summary.json`` (written by
``pipeline.analyse``), the label files it points to, and any review files
(``<direction set>.review-<reader>.json``) found beside the direction sets.
"""

from __future__ import annotations

import html
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write_text
from .labelling import LabelResult

log = logging.getLogger(__name__)

# Table 1 of the paper: (generator, reconstructor, configuration) -> (RCA, L_s).
PAPER_TABLE1: dict[tuple[str, str, str], tuple[float, float]] = {
    ("gan", "resnet", "ortho32"): (0.9236, 0.2538),
    ("gan", "resnet", "unit32"): (0.9383, 0.1949),
    ("gan", "resnet", "unit100"): (0.9522, 0.1560),
    ("gan", "lenet", "ortho32"): (0.8559, 0.3317),
    ("gan", "lenet", "unit32"): (0.9062, 0.2439),
    ("gan", "lenet", "unit100"): (0.9305, 0.1406),
    ("vae", "resnet", "ortho32"): (0.9939, 0.1040),
    ("vae", "resnet", "unit32"): (0.9947, 0.1086),
    ("vae", "resnet", "unit100"): (0.9861, 0.1117),
    ("vae", "lenet", "ortho32"): (0.9800, 0.1421),
    ("vae", "lenet", "unit32"): (0.9895, 0.1090),
    ("vae", "lenet", "unit100"): (0.9791, 0.0962),
}
CONFIG_TITLES = {"ortho32": "A<sup>32&times;32</sup> orthonormal", "unit32": "A<sup>32&times;32</sup> unit", "unit100": "A<sup>32&times;100</sup> unit"}
PAPER_FACTORS = ("width", "height", "size", "rotation", "y_position", "thickness", "breast_size", "z_level")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f0f0f0}
td.l,th.l{text-align:left}.muted{color:#777}.good{background:#e4f4e4}.bad{background:#fbe6e6}.warn{background:#fff5d6}
figure{margin:1em 0}figcaption{font-size:.9em;color:#444;max-width:900px}
img{max-width:100%;border:1px solid #ddd}.gifs{display:flex;flex-wrap:wrap;gap:1em}
.gifs figure{margin:0;width:300px}.kv td{text-align:left}.small{font-size:.85em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _f(x: Any, nd: int = 4) -> str:
    if x is None:
        return '<span class="muted">&ndash;</span>'
    try:
        return f"{float(x):.{nd}f}"
    except (TypeError, ValueError):
        return _e(x)


def _img(src: str, caption: str, out_dir: Path) -> str:
    if not (out_dir / src).exists():
        return f'<p class="muted">({_e(src)} was not produced)</p>'
    return f'<figure><img src="{_e(src)}" alt="{_e(caption)}"><figcaption>{caption}</figcaption></figure>'


def _table1(summary: dict[str, Any]) -> str:
    ours = {(r["generator"], r["reconstructor"], r["config"]): r for r in summary.get("table1", [])}
    rows = []
    for gen in ("gan", "vae"):
        for rec in ("resnet", "lenet"):
            cells = [f'<td class="l">{gen.upper()}</td><td class="l">{"ResNet" if rec == "resnet" else "LeNet"}</td>']
            for cfg in ("ortho32", "unit32", "unit100"):
                p_rca, p_ls = PAPER_TABLE1[(gen, rec, cfg)]
                r = ours.get((gen, rec, cfg))
                o_rca = r.get("rca") if r else None
                o_ls = r.get("ls") if r else None
                cells.append(f"<td><b>{_f(o_rca)}</b></td><td><b>{_f(o_ls)}</b></td><td class=muted>{p_rca:.4f}</td><td class=muted>{p_ls:.4f}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
    head1 = "".join(f'<th colspan="4">{CONFIG_TITLES[c]}</th>' for c in ("ortho32", "unit32", "unit100"))
    head2 = "<th>RCA</th><th>L<sub>s</sub></th><th>paper RCA</th><th>paper L<sub>s</sub></th>" * 3
    note = summary.get("table1_note", "")
    return (
        f'<table><tr><th class="l" rowspan="2">G</th><th class="l" rowspan="2">R</th>{head1}</tr><tr>{head2}</tr>'
        + "".join(rows)
        + "</table>"
        + (f'<p class="small">{_e(note)}</p>' if note else "")
    )


def _label_table(res: LabelResult, max_rows: int = 40) -> str:
    fac_head = "".join(f"<th>{_e(f)}</th>" for f in res.factors)
    rows = []
    for row in res.table()[:max_rows]:
        k = row["direction"]
        cls = "good" if row["label"] in res.factors else ("warn" if row["label"] == "entangled" else "muted")
        cells = "".join(
            f'<td class="{"good" if (res.factors[j] == row["top_factor"] and row["label"] in res.factors) else ""}">{res.significant[k, j]:.2f}</td>'
            for j in range(len(res.factors))
        )
        g = row["group"]
        rows.append(
            f'<tr><td>{row["rank"]}</td><td>{k}</td><td class="l {cls}">{_e(row["label"])}</td>'
            f'<td>{row["effect"]:.2f} {row["sign"]}</td><td class="small">[{row["ci"][0]:.2f}, {row["ci"][1]:.2f}]</td>'
            f'<td>{row["selectivity"]:.2f}</td><td>{row["consistency"]:.2f}</td><td>{"" if g is None else "G" + str(g)}</td>{cells}</tr>'
        )
    more = "" if max_rows >= res.K else f'<p class="small muted">{res.K - max_rows} more directions in the label file.</p>'
    return (
        '<table><tr><th>rank</th><th>dir</th><th class="l">label</th><th>effect</th><th>95% CI</th><th>selectivity</th>'
        f"<th>consistency</th><th>dup.</th>{fac_head}</tr>" + "".join(rows) + "</table>" + more
    )


def _review_section(sets: list[dict[str, Any]]) -> str:
    try:
        from .review import ReviewSession, score
    except ImportError:  # the review module belongs to the napari helper; the report works without it
        return '<p class="muted">Review module not available.</p>'
    parts = []
    for s in sets:
        p = Path(s["path"])
        for rf in sorted(p.parent.glob(p.name.replace(".safetensors", "") + ".review-*.json")):
            try:
                sess = ReviewSession.load(rf)
            except (OSError, ValueError, KeyError) as exc:
                parts.append(f'<p class="bad">Could not read review {_e(rf.name)}: {_e(exc)}</p>')
                continue
            sc = score(sess)
            auto = {}
            if s.get("labels_path") and Path(s["labels_path"]).exists():
                auto = dict(enumerate(LabelResult.load(s["labels_path"]).labels))
            agree = [
                _norm_label(it.label) == _norm_label(auto.get(it.index, ""))
                for it in sess.items
                if it.source == "discovered" and it.label and it.index in auto
            ]
            kv = "".join(f"<tr><td>{_e(k)}</td><td>{_f(v, 3)}</td></tr>" for k, v in sc.items())
            if agree:
                kv += f"<tr><td>agreement with automatic labels</td><td>{sum(agree)}/{len(agree)}</td></tr>"
            rows = "".join(
                f'<tr><td>{it.position}</td><td class="l">{_e(it.source)}</td><td>{it.index}</td><td class="l">{_e(it.label)}</td>'
                f'<td>{"" if it.rating is None else it.rating}</td><td class="l">{_e(auto.get(it.index, "")) if it.source == "discovered" else ""}</td>'
                f'<td class="l small">{_e(it.notes)}</td></tr>'
                for it in sess.items
            )
            parts.append(
                f"<h3>{_e(s['name'])} &mdash; reader {_e(sess.reader)}{' (blind)' if sess.blind else ''}</h3>"
                f'<table class="kv">{kv}</table>'
                '<table><tr><th>#</th><th class="l">source</th><th>dir</th><th class="l">reader label</th><th>rating</th>'
                f'<th class="l">automatic label</th><th class="l">notes</th></tr>{rows}</table>'
            )
    if not parts:
        return '<p class="muted">No review yet. Review a direction set in napari (Latent directions &rarr; Review); the review files saved beside the direction set appear here on the next <code>latentdirs report</code>.</p>'
    return "".join(parts)


def _norm_label(s: str) -> str:
    s = s.strip().lower().replace("-", "_").replace(" ", "_")
    return {"z_position": "z_level"}.get(s, s)


def render(run: str | Path) -> Path:
    """Write ``<run>/report/index.html`` from the analysis summary; return its path."""
    run = Path(run)
    summary_path = run / "analysis" / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{summary_path} not found: run `latentdirs run --out {run}` (or pipeline.analyse) first")
    summary = json.loads(summary_path.read_text())
    out_dir = run / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = summary.get("figures", {})
    sets = summary.get("direction_sets", [])
    body: list[str] = []
    created = summary.get("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    body.append(f"<h1>Latent directions report</h1><p class=muted>run <code>{_e(run.resolve())}</code> &middot; {_e(created)} &middot; preset <b>{_e(summary.get('preset', '?'))}</b> &middot; data: {_e(summary.get('data', {}).get('description', '?'))}</p>")
    if summary.get("warnings"):
        body.append("<ul>" + "".join(f'<li class="warn">{_e(w)}</li>' for w in summary["warnings"]) + "</ul>")

    # Overview
    gens = summary.get("generators", {})
    if gens:
        rows = "".join(
            f'<tr><td class="l">{_e(k)}</td><td class="l small">{_e(v.get("fingerprint", "")[:12])}</td>'
             f"<td>{_f(v.get('fid'), 1)}</td><td>{v.get('train_slices', '')}</td><td>{_f(v.get('seconds'), 0)}</td>"
             "</tr>"
            for k, v in gens.items()
        )
        body.append(
            "<h2>Generators</h2><table><tr><th class=l>model</th><th class=l>fingerprint</th><th>FID</th><th>train slices</th><th>seconds</th></tr>"
            + rows + "</table>"
        )
        body.append(_img(figs.get("samples", "samples.png"), "Random samples from each generator (CT window &minus;1000..400 HU).", out_dir))

    body.append("<h2>Table 1: reconstructor accuracy (RCA) and shift loss L<sub>s</sub></h2>")
    body.append("<p>Our numbers (bold columns) beside the paper's (grey). Higher RCA and lower L<sub>s</sub> are better.</p>")
    body.append(_table1(summary))

    # Factors found
    found = summary.get("factors_found", {})
    if found:
        body.append("<h2>Paper factors found by automatic labelling</h2>")
        head = "".join(f"<th>{_e(f)}</th>" for f in PAPER_FACTORS)
        rows = []
        for name, ff in found.items():
            cells = "".join(
                (f'<td class="good">#{ff[f]["direction"]} ({ff[f]["selectivity"]:.2f})</td>' if f in ff else '<td class="muted">&ndash;</td>')
                for f in PAPER_FACTORS
            )
            n = sum(f in ff for f in PAPER_FACTORS)
            rows.append(f'<tr><td class="l">{_e(name)}</td><td>{n}/8</td>{cells}</tr>')
        body.append(
            '<p>Cell: direction index (selectivity). A factor counts as found when some direction carries its label, i.e. its selectivity passed the threshold.</p>'
            f'<table><tr><th class="l">direction set</th><th>found</th>{head}</tr>' + "".join(rows) + "</table>"
        )

    zp = summary.get("z_position")
    if zp:
        body.append("<h2>3D structure from 2D slices: z-position</h2>")
        body.append(
            f"<p>Direction <b>#{zp['direction']}</b> of <b>{_e(zp['set'])}</b> moves the anatomical level measured by the z-level regressor by "
            f"<b>{zp['effect']:.2f}</b> natural standard deviations over its shift range (95% CI {zp['ci'][0]:.2f}&ndash;{zp['ci'][1]:.2f}; "
            f"consistent in {100 * zp['consistency']:.0f}% of latents; selectivity {zp['selectivity']:.2f}; label <b>{_e(zp['label'])}</b>). "
            f"The strongest z-level effect of a random direction is {zp.get('random_effect', float('nan')):.2f}.</p>"
        )
        body.append(_img(figs.get("fig8", "fig8_z_position.png"), "Fig. 8 layout: random latents shifted along the z-position direction.", out_dir))

    body.append("<h2>Discovered directions</h2>")
    for key, cap in (("fig2_vae", "Fig. 2 layout, VAE"), ("fig2_gan", "Fig. 2 layout, GAN")):
        if key in figs:
            body.append(_img(figs[key], cap + ": the best-ranked direction per factor; centre column is the original latent, left/right negative/positive shifts.", out_dir))
    gifs = figs.get("gifs", [])
    if gifs:
        body.append('<div class="gifs">' + "".join(
            f'<figure><img src="{_e(g["file"])}" alt="{_e(g["caption"])}"><figcaption>{_e(g["caption"])}</figcaption></figure>' for g in gifs
        ) + "</div>")
    for key, cap in (("fig9", "Fig. 9 layout: 5 random directions (left) beside the 5 best-ranked discovered directions (right), GAN."),
                     ("fig10", "Fig. 10 layout: the same for the VAE.")):
        if key in figs:
            body.append(_img(figs[key], cap, out_dir))

    body.append("<h2>Automatic labels</h2>")
    body.append(
        f"<p>{_e(summary.get('labelling_note', ''))}</p>"
    )
    for s in sets:
        lp = s.get("labels_path")
        if not lp or not Path(lp).exists():
            continue
        res = LabelResult.load(lp)
        n_lab = sum(lab in res.factors for lab in res.labels)
        groups = "; ".join("{" + ", ".join(map(str, g)) + "}" for g in res.groups) or "none"
        body.append(
            f"<h3>{_e(s['name'])}</h3><p class=small>{res.K} directions: {n_lab} selective, "
            f"{res.labels.count('entangled')} entangled, {res.labels.count('no effect')} without effect. Duplicate groups: {_e(groups)}.</p>"
        )
        body.append(_label_table(res, max_rows=s.get("table_rows", 40)))

    body.append("<h2>Disentanglement scores against the measured factors</h2>")
    body.append(f"<p class=small>{_e(summary.get('disentanglement_note', ''))}</p>")
    rows = "".join(
        f'<tr><td class="l">{_e(s["name"])}</td><td class="l">{_e(s.get("method", ""))}</td><td>{s.get("K", "")}</td>'
        f'<td>{_f(s.get("mig"), 3)}</td><td>{_f(s.get("dci_d"), 3)}</td><td>{_f(s.get("dci_c"), 3)}</td><td>{_f(s.get("dci_i"), 3)}</td>'
        f'<td>{_f(s.get("selectivity"), 3)}</td><td>{s.get("n_found", "")}/8</td></tr>'
        for s in sets
    )
    body.append(
        '<table><tr><th class="l">direction set</th><th class="l">method</th><th>K</th><th>MIG</th><th>DCI D</th><th>DCI C</th>'
        "<th>DCI I (NRMSE&darr;)</th><th>selectivity</th><th>factors</th></tr>" + rows + "</table>"
    )

    body.append("<h2>Interpolation and memorization (appendix C)</h2>")
    interp = summary.get("interpolation", {})
    for gname, it in interp.items():
        body.append(_img(it["figure"], f"Fig. 11 layout, {gname.upper()}: held-out slice A (top left) and B (bottom right) embedded by "
                         f"{_e(it['method'])} (reconstruction MSE {it['mse'][0]:.4f}, {it['mse'][1]:.4f}); the path between their latents. "
                         f"Smoothness (largest / mean frame-to-frame change): {it['smoothness']:.2f}.", out_dir))
    mem = summary.get("memorization", {})
    if mem:
        rows = "".join(
            f'<tr><td class="l">{_e(g)}</td><td>{m["generated_median"]:.4f}</td><td>{m["heldout_median"]:.4f}</td>'
            f'<td class="{"bad" if m["ratio"] < 0.5 else "good"}">{m["ratio"]:.3f}</td><td>{m["copies"]:.3f}</td></tr>'
            for g, m in mem.items()
        )
        body.append(
            "<p>Nearest-training-slice RMS distance (model space, 64&times;64). A ratio well below 1 means samples sit closer to "
            "training slices than unseen real slices do: memorization.</p>"
            '<table><tr><th class="l">generator</th><th>samples: median NN distance</th><th>held-out: median NN distance</th>'
            "<th>ratio</th><th>near-copies</th></tr>" + rows + "</table>"
        )

    body.append("<h2>Review</h2>")
    body.append(_review_section(sets))
    t = summary.get("timings", {})
    cpu = summary.get("cpu_seconds", {})
    if t:
        body.append(
            "<h2>Timings</h2><table><tr><th class=l>step</th><th>wall s</th><th>CPU s</th></tr>"
            + "".join(f'<tr><td class="l">{_e(k)}</td><td>{v:.1f}</td><td>{_f(cpu.get(k), 1)}</td></tr>' for k, v in t.items())
            + "</table>"
        )

    doc = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>napari-latentdirs report</title>"
        f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
    path = out_dir / "index.html"
    atomic_write_text(path, doc)
    log.info("report written to %s", path)
    return path
