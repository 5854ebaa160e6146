"""The headless main job (README command 1): data -> generators -> directions -> labels -> report.

``run_pipeline(PipelineConfig(out=...))`` runs every stage in order (``runs.stages``):

1. **data**: without ``data`` a synthetic phantom DICOM tree is written and prepared
   into a slice cache, as real data would be;
2. **generators**: on the phantom, the bundled demo VAE and DCGAN (trained with the CPU
   recipe by ``training/make_demo_models.py``) unless ``retrain``; other data trains both;
   then each generator's k-NN precision / recall against held-out real slices;
3. **directions**: the cells (``runs.config.CELLS``) x reconstructors x discovery seeds,
   plus the closed-form baselines and one matched random set per seed;
4. **analysis** (``runs.analyse``): labels, discovered versus random, scores, figures;
5. **report**: ``<out>/report/index.html``.

Each stage records its outputs in ``<out>/manifest.json`` and is skipped when they already
exist, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

from ..console import Progress
from ..utils.folderlock import hold_folder
from .analyse import analyse
from .config import PRESETS, PipelineConfig, make_config
from .folder import RunFolderError, check_run_folder
from .manifest import Manifest, Timer
from .stages import stage_data, stage_directions, stage_generators, stage_quality


def run_pipeline(cfg: PipelineConfig) -> Path:
    """All stages; returns the report path."""
    out = Path(cfg.out)
    check_run_folder(out)
    with hold_folder(out):  # one writer per run folder (issue 22)
        return _run_stages(cfg, out)


def _run_stages(cfg: PipelineConfig, out: Path) -> Path:
    from ..analysis.report import render

    prog = Progress(cfg.progress)
    man = Manifest(out)
    man.data["config"] = cfg.to_dict()
    man.save()
    tm = Timer()
    cache = stage_data(cfg, man, prog)
    gens = stage_generators(cfg, cache, man, prog)
    stage_quality(cfg, gens, cache, man, prog)
    stage_directions(cfg, gens, man, prog)
    analyse(out, cfg)
    path = render(out)
    man = Manifest(out)
    man.record("total", tm)
    man.save()
    return path


__all__ = ["PRESETS", "PipelineConfig", "RunFolderError", "analyse", "check_run_folder", "make_config", "run_pipeline"]
