"""The run report: one self-contained HTML file (inline CSS, no scripts, no
network) with its PNG figures and GIF animations beside it.

Everything shown is read from ``<run>/analysis/summary.json`` (written by
``pipeline.analyse``), the label files it points to, and any review files
(``<direction set>.review-<reader>.json``) found beside the direction sets.
Paths in the summary are relative to the run (absolute ones from older runs
are still read), so a copied or moved run shows its own reviews.

Every value from those files is data, never markup: the page is built with
:func:`.htmlsafe.h`, which escapes everything it interpolates unless it is
markup built the same way, and a field of the wrong type is shown as text.
Images are shown only by bare file names that exist beside the page.
"""

from __future__ import annotations

import html
import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..paper import COLUMNS, GENERATORS, PAPER_TABLE1, RECONSTRUCTORS
from ..probes.factors import DISPLAY_NAMES, PAPER_FACTORS, Z_LEVEL, canonical_factor
from ..utils.atomic import atomic_write_text
from ..utils.paths import from_run as resolve
from .htmlsafe import Html, escape, h, join
from .labelling import LabelResult
from .report_findings import as_float, comparison_table, headline, quality_table

log = logging.getLogger(__name__)

CONFIG_TITLES = {
    "ortho32": Html("A<sup>32&times;32</sup> orthonormal"),
    "unit32": Html("A<sup>32&times;32</sup> unit"),
    "unit100": Html("A<sup>32&times;100</sup> unit"),
}

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


MUTED_DASH = Html('<span class="muted">&ndash;</span>')
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ReportInputError(ValueError):
    """summary.json (or a file it names) does not have the structure the report needs."""


def _f(x: Any, nd: int = 4) -> Html:
    """A number with ``nd`` decimals; None as a dash; anything else as escaped text."""
    if x is None:
        return MUTED_DASH
    try:
        return h("{}", f"{float(x):.{nd}f}")
    except (TypeError, ValueError):
        return escape(x)


def _i(x: Any) -> Html:
    """An integer-like value (index, count) as text; anything else escaped."""
    return escape("" if x is None else x)


def _img(src: Any, caption: Html | str, out_dir: Path) -> Html:
    name = str(src)
    # Only a plain file beside the page: no other folder, no URL (the page stays offline).
    if not _FILE_NAME.match(name) or not (out_dir / name).is_file():
        return h('<p class="muted">({} was not produced)</p>', name)
    return h('<figure><img src="{}" alt="{}"><figcaption>{}</figcaption></figure>', name, _plain(caption), caption)


def _plain(fragment: Html | str) -> str:
    """The text of a fragment (for an alt attribute, which h escapes again)."""
    if not isinstance(fragment, Html):
        return str(fragment)
    return html.unescape(re.sub(r"<[^>]*>", "", fragment))


def _table1(summary: dict[str, Any]) -> Html:
    ours: dict[tuple, list[dict[str, Any]]] = {}
    for r in summary.get("table1", []):
        ours.setdefault((r.get("generator"), r.get("reconstructor"), r.get("config")), []).append(r)
    rows = []
    for gen in GENERATORS:
        for rec in RECONSTRUCTORS:
            cells = [h('<td class="l">{}</td><td class="l">{}</td>', gen.upper(), "ResNet" if rec == "resnet" else "LeNet")]
            for cfg in COLUMNS:
                p_rca, p_ls = PAPER_TABLE1[(gen, rec, cfg)]
                cells.append(h("{}<td class=muted>{:.4f}</td><td class=muted>{:.4f}</td>",
                               _our_cell(ours.get((gen, rec, cfg), [])), p_rca, p_ls))
            rows.append(h("<tr>{}</tr>", join(cells)))
    head1 = join(h('<th colspan="4">{}</th>', CONFIG_TITLES[c]) for c in COLUMNS)
    head2 = Html("<th>RCA</th><th>L<sub>s</sub></th><th>paper RCA</th><th>paper L<sub>s</sub></th>" * 3)
    note = summary.get("table1_note", "")
    return h(
        '<table><tr><th class="l" rowspan="2">G</th><th class="l" rowspan="2">R</th>{}</tr><tr>{}</tr>{}</table>{}',
        head1, head2, join(rows), h('<p class="small">{}</p>', note) if note else Html(""),
    )


def _our_cell(runs: list[dict[str, Any]]) -> Html:
    """Our RCA and L_s for one cell: the mean over discovery seeds, with the seeds' range."""
    if len(runs) == 1:  # one run: its values as they are (text if a field is not a number)
        r = runs[0]
        cls = "" if r.get("learned", True) is not False else ' class="bad"'
        return h("<td{}><b>{}</b></td><td><b>{}</b></td>", Html(cls), _f(r.get("rca")), _f(r.get("ls")))
    rca = [v for v in (as_float(r.get("rca")) for r in runs) if v is not None]
    ls = [v for v in (as_float(r.get("ls")) for r in runs) if v is not None]
    if not rca:
        return h("<td>{}</td><td>{}</td>", MUTED_DASH, MUTED_DASH)
    cls = "" if all(r.get("learned", True) is not False for r in runs) else ' class="bad"'
    spread = h('<br><span class="small muted">{:.3f}&ndash;{:.3f}, {} seeds</span>', min(rca), max(rca), len(rca)) if len(rca) > 1 else Html("")
    return h("<td{}><b>{}</b>{}</td><td><b>{}</b></td>", Html(cls), _f(sum(rca) / len(rca)), spread,
             _f(sum(ls) / len(ls)) if ls else MUTED_DASH)


def _label_table(res: LabelResult, max_rows: Any = 40) -> Html:
    try:
        max_rows = int(max_rows)
    except (TypeError, ValueError):
        max_rows = 40
    fac_head = join(h("<th>{}</th>", f) for f in res.factors)
    desc = res.descriptions()
    rows = []
    for row in res.table()[:max_rows]:
        k = row["direction"]
        cls = "good" if row["label"] in res.factors else ("warn" if row["label"] == "entangled" else "muted")
        cells = join(
            h('<td class="{}">{:.2f}</td>', "good" if (res.factors[j] == row["top_factor"] and row["label"] in res.factors) else "",
              res.significant[k, j])
            for j in range(len(res.factors))
        )
        g = row["group"]
        label, sel_cell, cons_cls = _label_cells(row, res.config)
        rows.append(h(
            '<tr><td>{}</td><td>{}</td><td class="l {}">{}</td><td class="l small">{}</td><td>{:.2f} {}</td>'
            '<td class="small">[{:.2f}, {:.2f}]</td><td>{}</td><td class="{}">{:.2f}</td><td>{}</td>{}</tr>',
            row["rank"], k, cls, label, desc[k], row["effect"], row["sign"], row["ci"][0], row["ci"][1],
            sel_cell, cons_cls, row["consistency"], "" if g is None else f"G{g}", cells,
        ))
    more = Html("") if max_rows >= res.K else h('<p class="small muted">{} more directions in the label file.</p>', res.K - max_rows)
    return h(
        '<table><tr><th>rank</th><th>dir</th><th class="l">label</th><th class="l">does</th><th>effect</th><th>95% CI</th>'
        "<th>selectivity</th>"
        "<th>consistency</th><th>dup.</th>{}</tr>{}</table>{}",
        fac_head, join(rows), more,
    )


def _label_cells(row: dict[str, Any], config: dict[str, Any]) -> tuple[str, Html, str]:
    """(label, selectivity cell, consistency cell class) that agree with each other: no selectivity for
    "no effect" (a share of changes too small to count), and an entangled direction that is selective
    enough says that its sign varies, with its consistency cell marked (the criterion it failed)."""
    from .labelling import ENTANGLED, NO_EFFECT, LabelConfig

    threshold = (as_float(config.get("selectivity_threshold")) if isinstance(config, dict) else None) \
        or LabelConfig.selectivity_threshold
    if row["label"] == NO_EFFECT:
        return row["label"], MUTED_DASH, ""
    if row["label"] == ENTANGLED and row["selectivity"] >= threshold:
        return f"{ENTANGLED} (sign varies)", h("{:.2f}", row["selectivity"]), "bad"
    return row["label"], h("{:.2f}", row["selectivity"]), ""


def review_block(set_name: Any, sess: Any, scores: dict[str, Any], auto: dict[int, str]) -> Html:
    """One reader's review of one direction set. ``sess`` is whatever a review file held:
    every field is shown as text, whatever its type."""
    kv = join(h("<tr><td>{}</td><td>{}</td></tr>", *_review_score(k, v)) for k, v in scores.items())
    agree = [
        _norm_label(it.label) == _norm_label(auto.get(it.index, ""))
        for it in sess.items
        if it.source == "discovered" and it.label and it.index in auto
    ]
    if agree:
        kv = h("{}<tr><td>agreement with automatic labels</td><td>{}/{}</td></tr>", kv, sum(agree), len(agree))
    rows = join(
        h('<tr><td>{}</td><td class="l">{}</td><td>{}</td><td class="l">{}</td><td>{}</td><td class="l">{}</td>'
          '<td class="l small">{}</td></tr>',
          _i(it.position), it.source, _i(it.index), it.label, _i(it.rating),
          auto.get(it.index, "") if it.source == "discovered" else "", it.notes)
        for it in sess.items
    )
    return h(
        '<h3>{} &mdash; reader {}{}</h3><table class="kv">{}</table>'
        '<table><tr><th>#</th><th class="l">source</th><th>dir</th><th class="l">reader label</th><th>rating</th>'
        '<th class="l">automatic label</th><th class="l">notes</th></tr>{}</table>',
        set_name, sess.reader, " (blind)" if sess.blind is True else "", kv, rows,
    )


def _review_section(run: Path, sets: list[dict[str, Any]]) -> Html:
    try:
        from ..directions.set import DirectionSet
        from .review import ReviewSession, score
    except ImportError:  # the review module belongs to the napari helper; the report works without it
        return Html('<p class="muted">Review module not available.</p>')
    parts = []
    for s in sets:
        p = resolve(run, s["path"], f"summary.json: direction_sets[{s.get('name')!r}].path")
        directions = None
        for rf in sorted(p.parent.glob(p.name.replace(".safetensors", "") + ".review-*.json")):
            try:
                if directions is None:
                    directions = DirectionSet.load(p)
                sess = ReviewSession.load(rf, directions)  # indices checked against K, as the widget does
                auto: dict[int, str] = {}
                if s.get("labels_path") and resolve(run, s["labels_path"]).exists():
                    auto = dict(enumerate(LabelResult.load(resolve(run, s["labels_path"])).labels))
                parts.append(review_block(s["name"], sess, score(sess), auto))
            except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                # One damaged review costs its own section, not the report.
                parts.append(h('<p class="bad">Could not read review {}: {}</p>', rf.name, f"{type(exc).__name__}: {exc}"))
    if not parts:
        return Html('<p class="muted">No review yet. Review a direction set in napari (Plugins &rarr; Latent Directions '
                    'for CT &rarr; Review directions); the review files saved beside the direction set appear here on '
                    'the next <code>latentdirs report</code>.</p>')
    return join(parts)


def _norm_label(s: Any) -> str:
    return canonical_factor(s)


def render(run: str | Path) -> Path:
    """Write ``<run>/report/index.html`` from the analysis summary; return its path."""
    run = Path(run)
    summary_path = run / "analysis" / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{summary_path} not found: run `latentdirs run --out {run}` (or pipeline.analyse) first")
    summary = json.loads(summary_path.read_text())
    if not isinstance(summary, dict):
        raise ReportInputError(f"{summary_path} is not a JSON object")
    out_dir = run / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        body = _body(run, summary, out_dir)
    except (TypeError, KeyError, AttributeError, IndexError, ValueError) as exc:
        raise ReportInputError(f"{summary_path} is malformed ({type(exc).__name__}: {exc})") from exc
    doc = h(
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>napari-latentdirs report</title>"
        "<style>{}</style></head><body>{}</body></html>\n",
        Html(CSS), join(body, "\n"),
    )
    path = out_dir / "index.html"
    atomic_write_text(path, doc)
    log.info("report written to %s", path)
    return path


def _body(run: Path, summary: dict[str, Any], out_dir: Path) -> list[Html]:
    figs = summary.get("figures", {})
    sets = summary.get("direction_sets", [])
    body: list[Html] = []
    created = summary.get("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    body.append(h("<h1>Latent directions report</h1><p class=muted>run <code>{}</code> &middot; {} &middot; preset <b>{}</b> &middot; data: {}</p>",
                  run.resolve(), created, summary.get("preset", "?"), summary.get("data", {}).get("description", "?")))
    if summary.get("warnings"):
        body.append(h("<ul>{}</ul>", join(h('<li class="warn">{}</li>', w) for w in summary["warnings"])))

    body.append(Html(
        '<p class="small">Contents: <a href="#findings">findings</a> &middot; <a href="#generators">generators</a> &middot; '
        '<a href="#table1">Table 1</a> &middot; <a href="#random">discovered vs random</a> &middot; '
        '<a href="#factors">factors found</a> &middot; <a href="#figures">figures</a> &middot; '
        '<a href="#labels">labels</a> &middot; <a href="#scores">scores</a> &middot; '
        '<a href="#memorization">interpolation and memorization</a> &middot; <a href="#review">review</a></p>'))
    body.append(h('<h2 id="findings">Findings</h2>{}', headline(summary)))
    body.append(_label_terms(run, sets))

    gens = summary.get("generators", {})
    if gens:
        rows = join(
            h('<tr><td class="l">{}</td><td class="l small">{}</td><td class="l small">{}</td><td>{}</td><td>{}</td></tr>',
              k, str(v.get("fingerprint", ""))[:12], v.get("source", ""), _f(v.get("fid"), 1), _f(v.get("seconds"), 0))
            for k, v in gens.items()
        )
        body.append(h('<h2 id="generators">Generators</h2><table><tr><th class=l>model</th><th class=l>fingerprint</th>'
                      "<th class=l>source</th><th>FID</th><th>seconds here</th></tr>{}</table>", rows))
        body.append(quality_table(summary.get("quality", {})))
        body.append(_img(figs.get("samples", "samples.png"), Html("Random samples from each generator (CT window &minus;1000..400 HU)."), out_dir))

    body.append(Html('<h2 id="table1">Table 1: reconstructor accuracy (RCA) and shift loss L<sub>s</sub></h2>'))
    body.append(Html("<p>Our numbers (bold columns) beside the paper's (grey). Higher RCA and lower L<sub>s</sub> are better; "
                     "chance RCA is 1/K (0.031 for K = 32, 0.010 for K = 100). A red cell holds a set that did not learn.</p>"))
    body.append(_table1(summary))

    body.append(Html('<h2 id="random">Discovered versus random directions</h2>'))
    body.append(h('<p class="small">{}</p>', summary.get("comparison_note", "")))
    for kind, c in summary.get("comparison", {}).items():
        body.append(comparison_table(kind, c))

    # Factors found
    found = summary.get("factors_found", {})
    if found:
        head = join(h("<th>{}</th>", f) for f in PAPER_FACTORS)
        rows = []
        for name, ff in found.items():
            cells = join(
                h('<td class="good">#{} ({:.2f})</td>', _i(ff[f]["direction"]), ff[f]["selectivity"]) if f in ff else MUTED_DASH_CELL
                for f in PAPER_FACTORS
            )
            n = sum(f in ff for f in PAPER_FACTORS)
            rows.append(h('<tr><td class="l">{}</td><td>{}/{}</td>{}</tr>', name, n, len(PAPER_FACTORS), cells))
        body.append(h(
            '<h2 id="factors">Paper factors found by automatic labelling</h2>'
            "<p>Cell: direction index (selectivity). A factor counts as found when some direction carries its label, i.e. its "
            "selectivity passed the threshold. Random sets are listed too: a factor a random set also finds is no evidence "
            "of the method.</p>"
            '<table><tr><th class="l">direction set</th><th>found</th>{}</tr>{}</table>',
            head, join(rows),
        ))

    zp = summary.get("z_position")
    if zp:
        body.append(h("<h2>3D structure from 2D slices: {}</h2>", DISPLAY_NAMES[Z_LEVEL]))
        body.append(h(
            "<p>Direction <b>#{}</b> of <b>{}</b> moves the anatomical level measured by the z-level regressor by "
            "<b>{:.2f}</b> natural standard deviations over its shift range (95% CI {:.2f}&ndash;{:.2f}; "
            "consistent in {:.0f}% of latents; selectivity {:.2f}; label <b>{}</b>). "
            "The strongest z-level effect of a random direction is {:.2f}.</p>",
            _i(zp["direction"]), zp["set"], zp["effect"], zp["ci"][0], zp["ci"][1], _percent(zp["consistency"]),
            zp["selectivity"], zp["label"], zp.get("random_effect", float("nan")),
        ))
        body.append(_img(figs.get("fig8", "fig8_z_position.png"), "Fig. 8 layout: random latents shifted along the z-position direction.", out_dir))

    body.append(Html('<h2 id="figures">Discovered directions</h2>'))
    for key, cap in (("fig2_vae", "Fig. 2 layout, VAE"), ("fig2_gan", "Fig. 2 layout, GAN")):
        if key in figs:
            body.append(_img(figs[key], cap + ": " + _fig2_rows(figs.get(key + "_rows"))
                             + " Centre column: the original latent; left/right: negative/positive shifts.", out_dir))
    gifs = figs.get("gifs", [])
    if gifs:
        body.append(h('<div class="gifs">{}</div>', join(_img(g["file"], str(g["caption"]), out_dir) for g in gifs)))
    for key, cap in (("fig9", "Fig. 9 layout: 5 random directions (left) beside the 5 best-ranked discovered directions (right), GAN."),
                     ("fig10", "Fig. 10 layout: the same for the VAE.")):
        if key in figs:
            body.append(_img(figs[key], cap, out_dir))

    body.append(Html('<h2 id="labels">Automatic labels</h2>'))
    body.append(h("<p>{}</p>", summary.get("labelling_note", "")))
    body.append(Html(
        '<p class="small">Columns: <b>rank</b> by score; <b>dir</b> the direction index; <b>label</b> a factor, entangled '
        "or no effect (the strict single-factor label that counts a factor as found); <b>does</b> the top two factors with "
        "their signs and shares of the significant effects; <b>effect</b> the top factor's effect in natural SDs over the shift range and its sign; <b>95% CI</b> "
        "its bootstrap interval; <b>selectivity</b> the top factor's share of the direction's significant effects; "
        "<b>consistency</b> the share of latents agreeing on the sign; <b>dup.</b> the duplicate group; then each factor's "
        "significant effect (green: the labelled factor). Click a set to open its table.</p>"))
    for s in sets:
        lp = s.get("labels_path")
        if not lp or not resolve(run, lp).exists():
            continue
        res = LabelResult.load(resolve(run, lp))
        n_lab = sum(lab in res.factors for lab in res.labels)
        groups = "; ".join("{" + ", ".join(map(str, g)) + "}" for g in res.groups) or "none"
        body.append(h(
            "<details><summary><b>{}</b> &mdash; {} directions: {} selective, {} entangled, {} without effect{}</summary>"
            "<p class=small>Duplicate groups: {}.</p>{}</details>",
            s["name"], res.K, n_lab, res.labels.count("entangled"), res.labels.count("no effect"),
            Html(' <span class="bad">(not learned)</span>') if s.get("learned") is False else Html(""),
            groups, _label_table(res, max_rows=s.get("table_rows", 40)),
        ))

    body.append(Html('<h2 id="scores">Disentanglement scores against the measured factors</h2>'))
    body.append(h("<p class=small>{}</p>", summary.get("disentanglement_note", "")))
    rows = join(_disentanglement_row(s) for s in sets)
    body.append(h(
        '<table><tr><th class="l">direction set</th><th class="l">method</th><th>K</th><th>eff. rank</th><th>max |cos|</th>'
        "<th>dup. groups</th><th>MIG</th><th>MIG floor</th><th>DCI D</th><th>D orthonormal</th><th>D same spectrum</th>"
        "<th>DCI C</th><th>DCI I (NRMSE&darr;)</th><th>selectivity</th><th>factors</th></tr>{}</table>",
        rows,
    ))

    body.append(Html('<h2 id="memorization">Interpolation and memorization (appendix C)</h2>'))
    if summary.get("interpolation"):
        body.append(Html(
            '<p class="small"><b>Reconstruction MSE</b> is the mean squared pixel difference, in model space [&minus;1, 1], '
            "between a held-out slice and the generator's image of its embedded latent (also given as an RMS in HU). "
            "Pixel error is dominated by air and the body outline and hardly notices texture, so a grainy or "
            "grid-patterned image can score a lower MSE than a blurred one that looks closer to the slice. Read it with "
            "the <b>checkerboard index</b> of the path's frames (power at the grid frequencies of stride-2 transposed "
            "convolutions over that of the two real slices; about 1 for real CT), and judge the anatomy by eye.</p>"))
    for gname, it in summary.get("interpolation", {}).items():
        cap = h("Fig. 11 layout, {}: held-out slice A (top left) and B (bottom right) embedded by "
                "{} (reconstruction MSE {:.4f}, {:.4f}{}); the path between their latents. "
                "Smoothness (largest / mean frame-to-frame change): {:.2f}.{}",
                str(gname).upper(), it["method"], it["mse"][0], it["mse"][1], _rms_hu(it.get("rms_hu")),
                it["smoothness"], _texture(it.get("checkerboard")))
        body.append(_img(it["figure"], cap, out_dir))
    mem = summary.get("memorization", {})
    if mem:
        rows = join(
            h('<tr><td class="l">{}</td><td>{:.4f}</td><td>{:.4f}</td><td class="{}">{:.3f}</td><td>{:.3f}</td></tr>',
              g, m["generated_median"], m["heldout_median"], _ratio_class(m["ratio"]), m["ratio"], m["copies"])
            for g, m in mem.items()
        )
        body.append(h(
            "<p>Nearest-training-slice RMS distance (model space, 64&times;64). A ratio well below 1 means samples sit closer to "
            "training slices than unseen real slices do: memorization. Yellow below 1, red below 0.5, green at 1 or above.</p>"
            '<table><tr><th class="l">generator</th><th>samples: median NN distance</th><th>held-out: median NN distance</th>'
            "<th>ratio</th><th>near-copies</th></tr>{}</table>",
            rows,
        ))

    body.append(Html('<h2 id="review">Review</h2>'))
    body.append(_review_section(run, sets))
    t = summary.get("timings", {})
    cpu = summary.get("cpu_seconds", {})
    if t:
        body.append(h(
            "<h2>Timings</h2><table><tr><th class=l>step</th><th>wall s</th><th>CPU s</th></tr>{}</table>",
            join(h('<tr><td class="l">{}</td><td>{}</td><td>{}</td></tr>', k, _f(v, 1), _f(cpu.get(k), 1)) for k, v in t.items()),
        ))
    return body


MUTED_DASH_CELL = Html('<td class="muted">&ndash;</td>')


def _disentanglement_row(s: dict[str, Any]) -> Html:
    """One set's collapse figures and scores, each control beside the score it qualifies."""
    col = s.get("collapse") if isinstance(s.get("collapse"), dict) else {}
    return h(
        '<tr><td class="l">{}</td><td class="l">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
        '<td class="muted">{}</td><td>{}</td><td class="muted">{}</td><td class="muted">{}</td><td>{}</td><td>{}</td>'
        "<td>{}</td><td>{}/{}</td></tr>",
        s["name"], s.get("method", ""), _i(s.get("K", "")), _f(col.get("effective_rank"), 1), _f(col.get("max_abs_cos"), 2),
        h("{} (largest {})", _i(col.get("n_groups", "")), _i(col.get("largest_group", ""))) if col else MUTED_DASH,
        _f(s.get("mig"), 3), _f(s.get("mig_floor"), 3), _f(s.get("dci_d"), 3), _f(s.get("dci_d_ortho"), 3),
        _f(s.get("dci_d_spectrum"), 3), _f(s.get("dci_c"), 3), _f(s.get("dci_i"), 3), _f(s.get("selectivity"), 3),
        _i(s.get("n_found", "")), len(PAPER_FACTORS))

#: The review scores (``analysis.review.score``) in words, and how each value reads.
SCORE_NAMES: dict[str, tuple[str, str]] = {
    "n_reviewed": ("directions reviewed", "count"),
    "n_discovered": ("of them discovered", "count"),
    "n_random": ("of them random", "count"),
    "accuracy": ("told discovered from random correctly", "percent"),
    "interpretable_discovered": ("discovered directions judged interpretable", "percent"),
    "interpretable_random": ("random directions judged interpretable", "percent"),
    "mean_rating_discovered": ("mean rating of discovered directions (1-5)", "rating"),
    "mean_rating_random": ("mean rating of random directions (1-5)", "rating"),
    "sensitivity": ("sensitivity: discovered directions judged interpretable", "percent"),
    "specificity": ("specificity: random directions judged not interpretable", "percent"),
    "auc": ("chance that a discovered direction is rated above a random one (AUC; 0.5 = no difference)", "ratio"),
}


def _review_score(key: Any, value: Any) -> tuple[Any, Any]:
    """One review score as (name in words, value as it reads): "directions reviewed | 10", "70%"."""
    name, kind = SCORE_NAMES.get(key, (str(key).replace("_", " "), "ratio")) if isinstance(key, str) else (key, "ratio")
    v = as_float(value)
    if v is None:
        return name, escape(value)
    if kind == "count" or (kind == "ratio" and float(v).is_integer()):
        return name, f"{v:.0f}"
    if kind == "percent":
        return name, f"{100 * v:.0f}%"
    return name, f"{v:.1f}" if kind == "rating" else f"{v:.2f}"


def _label_terms(run: Path, sets: list[dict[str, Any]]) -> Html:
    """What the labels mean, where the report first uses them (the thresholds of this run's label files)."""
    from .labelling import LabelConfig

    cfg: dict[str, Any] = {}
    for s in sets:
        lp = s.get("labels_path") if isinstance(s, dict) else None
        if lp:
            try:
                loaded = LabelResult.load(resolve(run, lp)).config
                cfg = loaded if isinstance(loaded, dict) else {}
                break
            except (OSError, ValueError, KeyError, TypeError):
                continue
    d = LabelConfig()
    sel = as_float(cfg.get("selectivity_threshold")) or d.selectivity_threshold
    cons = as_float(cfg.get("min_consistency")) or d.min_consistency
    eff = as_float(cfg.get("min_effect")) or d.min_effect
    return h(
        '<p class="small"><b>How directions are named.</b> Each direction is measured on many random latents shifted both '
        "ways. It takes a factor's name (<i>selective</i>) when that factor makes up at least {:.0%} of the direction's "
        "measurable effects (its <b>selectivity</b>) and at least {:.0%} of latents move it the same way. "
        "<b>Entangled</b>: the direction changes several factors at once (selectivity below {:.2f}), or changes its "
        "top factor one way for some latents and the other way for others (\"sign varies\"). <b>No effect</b>: no "
        "factor moves by {:.1f} natural standard deviations over the shift range; its selectivity is not shown, as a "
        "share of changes too small to count means nothing.</p>",
        sel, cons, sel, eff)


def _fig2_rows(rows: Any) -> str:
    """The Fig. 2 caption's account of its rows: found factors first, then the best-ranked others."""
    found = as_float(rows.get("found")) if isinstance(rows, dict) else None
    n = as_float(rows.get("rows")) if isinstance(rows, dict) else None
    if found is None or n is None:
        return "the best direction per factor found, then the best-ranked other directions."
    if found == 0:
        return (f"no direction of this set is selective for one factor, so the {n:.0f} rows are its best-ranked "
                "directions, each named by what it changes most (or \"no effect\").")
    rest = n - found
    more = (f", then the {rest:.0f} best-ranked other directions (a factor's second direction is marked 2nd; "
            "an entangled one is named by what it changes most)") if rest > 0 else ""
    return f"one row per factor found ({found:.0f}: its best direction, with its selectivity){more}."


def _rms_hu(x: Any) -> Html:
    vals = [as_float(v) for v in x] if isinstance(x, list | tuple) else []
    if len(vals) != 2 or any(v is None for v in vals):
        return Html("")
    return h("; RMS {:.0f} and {:.0f} HU", vals[0], vals[1])


def _texture(x: Any) -> Html:
    v = as_float(x)
    if v is None:
        return Html("")
    return h(" Checkerboard index of the frames: {:.1f} (real CT about 1).", v)


def _percent(x: Any) -> Any:
    try:
        return 100 * float(x)
    except (TypeError, ValueError):
        return x


def _ratio_class(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return ""
    # Below 1 the samples sit closer to training slices than unseen real slices do: the warning.
    return "bad" if v < 0.5 else ("warn" if v < 1.0 else "good")

