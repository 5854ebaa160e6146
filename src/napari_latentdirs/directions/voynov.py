"""Unsupervised direction discovery (Voynov & Babenko 2020; the paper's section 2.2).

``train_directions(cfg, generator, run_dir, stop)`` learns A (latent_dim x K)
and a reconstructor R for a frozen generator G. Each step:

1. z ~ N(0, I), k ~ U{0..K-1}, alpha ~ U[-6, 6] with |alpha| < 0.5 snapped to
   +-0.5 (sign kept; 0 counts as positive);
2. x = G(z) without autograd; x' = G(z + alpha A e_k) with autograd, so the
   gradient reaches A through G's *input* only. G's parameters never require
   grad, so no weight gradient of G is ever computed (the reference code
   computes them and throws them away, which costs about a third of its step);
3. loss = CE(R_logits(x, x'), k) + gamma * mean |R_alpha(x, x') - alpha|;
   Adam on A and R.

Beyond the paper, ``orthogonal_changes`` (weight lambda > 0) fights the collapse of A onto a
few strong directions (OroJaR, Wei et al. 2021; the Hessian penalty of Peebles et al. 2020 in
spirit): the batch is drawn in pairs that share z but shift along two *different* directions,
and lambda * mean cos^2 between the two image changes G(z + a A e_i) - G(z) and
G(z + b A e_j) - G(z) is added to the loss. It costs no extra generator pass. With lambda = 0
the draws are exactly the paper's.

Metrics (``evaluate``): RCA, the reconstructor's accuracy on fresh batches
(100 by default) in eval mode, as the reference computes it; ``shift_loss``,
the paper's L_s convention (gamma * mean |alpha_hat - alpha|, what the
reference logs), and ``shift_l1``, the raw mean |alpha_hat - alpha|.

The engine is a generator of :mod:`napari_latentdirs.events`, stoppable
within one step and resumable bit for bit from ``<run>/checkpoints/last``.
(z, k, alpha) are drawn on the CPU from one seeded generator and copied to
the device (a few KB per step), so a CUDA and a CPU run draw the same
numbers and a run stopped on one device type resumes on another. Losses stay on the device between ``log_every``
steps on a GPU (every step is reported on the CPU, where that costs
nothing); NaN/inf stops the run before anything is written from it. On CUDA
G and R run under bfloat16 autocast (``amp``), the losses in float32.
Outputs: ``<run>/directions.safetensors`` (a
:class:`~napari_latentdirs.directions.set.DirectionSet`),
``<run>/reconstructor.safetensors`` (R's weights), ``metrics.csv`` and
TensorBoard logs. G is put in eval mode, frozen (``requires_grad_(False)``)
and moved to the configured device.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.preprocess import Preprocessing
from ..events import CheckpointSaved, Event, Finished, Message, Samples, Started, Step, Stopped
from ..models.reconstructors import build_reconstructor, canonical_reconstructor, min_input_size
from ..models.registry import preprocessing_of
from ..paper import GENERATORS as PAPER_GENERATORS
from ..paper import PAPER_STEPS, generator_kind
from ..training.state import NonFiniteLossError, RunDir, ScalarLogger, check_run_folder
from ..utils.folderlock import locked_events
from ..utils.runtime import bf16_supported, select_device, step_seed
from ..utils.weights import (
    WeightsFormatError,
    check_shapes,
    load_weights,
    read_header,
    read_meta,
    save_weights,
)
from .collapse import collapse_of
from .matrix import DirectionModel, orthonormality_error
from .set import DirectionSet

DIRECTIONS_FILE = "directions.safetensors"
RECONSTRUCTOR_FILE = "reconstructor.safetensors"
CHECKPOINT = "last"
GENERATOR_KINDS = ("gan", "vae", "analytic")



def paper_steps(K: int, generator_kind: str, reconstructor: str) -> int:
    """The paper's step count; K <= 32 uses the K = 32 budget, larger K the K = 100 one,
    and generators other than the VAE (the analytic one included) the GAN's."""
    kind = "vae" if generator_kind == "vae" else "gan"
    return PAPER_STEPS[(32 if K <= 32 else 100, kind, canonical_reconstructor(reconstructor))]


@dataclass(frozen=True)
class DirectionsConfig:
    K: int = 32  # the paper's symbol
    variant: str = "unit"  # unit | ortho | random
    reconstructor: str = "lenet"  # lenet | resnet18
    # The image size R sees (the pair is area-averaged to it); None: the generator's full size,
    # as the paper. The CPU recipe uses 64.
    reconstructor_input: int | None = None
    init: str = "random"  # random | axes
    init_scale: float = 0.1  # std of the unit variant's random init (the reference uses 0.1)
    steps: int | None = None  # None: the paper's count for (K, generator_kind, reconstructor)
    steps_scale: float = 1.0  # multiplies the step count (Table 1 on a CPU)
    batch_size: int = 128
    lr: float = 1e-4
    gamma: float = 0.25
    alpha_max: float = 6.0
    alpha_min: float = 0.5
    seed: int = 0
    eval_batches: int = 100
    eval_batch_size: int | None = None  # None: batch_size
    log_every: int = 100
    sync_every: int | None = None  # steps between host syncs of the losses; None: 1 on CPU, log_every on GPU
    checkpoint_every: int = 1000
    sample_every: int = 0  # 0: sample images only at the end
    device: str = "auto"
    amp: str = "auto"  # auto: bfloat16 autocast on GPUs with native bf16 (CUDA, capability 8.0+); off: float32
    generator_kind: str = "gan"  # gan | vae | analytic (chooses the paper's step count)
    generator_fingerprint: str = ""
    generator_path: str = ""
    # Weight of the penalty that keeps different directions' image changes orthogonal (module
    # docstring); 0: the paper's loss and draws.
    orthogonal_changes: float = 0.0

    def __post_init__(self) -> None:
        from .matrix import INITS, VARIANTS

        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose from {VARIANTS}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose from {INITS}")
        canonical_reconstructor(self.reconstructor)
        if self.K < 1 or self.batch_size < 2 or self.eval_batches < 1:
            raise ValueError(f"K >= 1, batch_size >= 2 (BatchNorm) and eval_batches >= 1 required: {self}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be positive, got {self.steps}")
        if not self.steps_scale > 0:
            raise ValueError(f"steps_scale must be positive, got {self.steps_scale}")
        if not 0 <= self.alpha_min < self.alpha_max:
            raise ValueError(f"need 0 <= alpha_min < alpha_max, got {self.alpha_min}, {self.alpha_max}")
        if self.sync_every is not None and self.sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {self.sync_every}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be auto|bf16|off, got {self.amp!r}")
        if not self.orthogonal_changes >= 0:
            raise ValueError(f"orthogonal_changes must be >= 0, got {self.orthogonal_changes}")
        if self.orthogonal_changes > 0 and (self.K < 2 or self.batch_size % 2):
            raise ValueError("orthogonal_changes needs K >= 2 and an even batch_size (the batch is drawn in pairs)")
        if self.generator_kind not in GENERATOR_KINDS:
            raise ValueError(f"unknown generator_kind {self.generator_kind!r}; choose from {GENERATOR_KINDS}")

    @property
    def total_steps(self) -> int:
        base = self.steps if self.steps is not None else paper_steps(self.K, self.generator_kind, self.reconstructor)
        return max(1, round(base * self.steps_scale))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DirectionsConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown direction-config keys: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path, base: dict[str, Any] | None = None) -> DirectionsConfig:
        """The file's settings over ``base`` (e.g. a named recipe) over the defaults."""
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of config keys")
        data.pop("cell", None)
        data.pop("paper", None)
        return cls.from_dict({**(base or {}), **data})


# -- one step ----------------------------------------------------------------------

def sample_inputs(gen: torch.Generator, batch: int, latent_dim: int, K: int, alpha_max: float,
                  alpha_min: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, k, alpha) for one batch, all drawn from ``gen`` (which lives on ``device``)."""
    z = torch.randn(batch, latent_dim, generator=gen, device=device)
    k = torch.randint(0, K, (batch,), generator=gen, device=device)
    alpha = (torch.rand(batch, generator=gen, device=device) * 2.0 - 1.0) * alpha_max
    sign = torch.where(alpha < 0, -1.0, 1.0)
    alpha = torch.where(alpha.abs() < alpha_min, sign * alpha_min, alpha)
    return z, k, alpha


def pair_inputs(z: torch.Tensor, k: torch.Tensor, gen: torch.Generator, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows 2i and 2i+1 share row 2i's latent and shift along two different directions
    (for ``orthogonal_changes``): the odd rows' directions are redrawn as k + U{1..K-1} mod K."""
    z = z.clone()
    z[1::2] = z[0::2]
    k = k.clone()
    k[1::2] = (k[0::2] + torch.randint(1, K, (k[1::2].shape[0],), generator=gen, device=k.device)) % K
    return z, k


def change_overlap(x: torch.Tensor, x_shifted: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine between the image changes of rows 2i and 2i+1 (see ``pair_inputs``)."""
    d = (x_shifted.float() - x.float()).flatten(1)
    a, b = d[0::2], d[1::2]
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-8)
    return cos.square().mean()


def freeze(generator: nn.Module) -> nn.Module:
    generator.eval()
    generator.requires_grad_(False)
    return generator


def direction_step(G: nn.Module, A: DirectionModel, R: nn.Module, optimizers: list[torch.optim.Optimizer],
                   z: torch.Tensor, k: torch.Tensor, alpha: torch.Tensor, gamma: float,
                   amp: torch.dtype | None = None, orthogonal_changes: float = 0.0) -> torch.Tensor:
    """One optimisation step; returns detached [loss, ce, shift_l1, accuracy]. G must be frozen.

    ``amp``: autocast dtype for G and R (bfloat16 needs no gradient scaler); the losses are float32.
    ``orthogonal_changes``: weight of :func:`change_overlap` (the batch must come from ``pair_inputs``).
    """
    ctx = torch.autocast(z.device.type, dtype=amp) if amp is not None else nullcontext()
    with ctx:
        with torch.no_grad():
            x = G.generate(z)
        x_shifted = G.generate(z + A(k, alpha))
        logits, alpha_hat = R(x, x_shifted)
    ce = F.cross_entropy(logits.float(), k)
    l1 = (alpha_hat.float() - alpha).abs().mean()
    loss = ce + gamma * l1
    if orthogonal_changes > 0:
        loss = loss + orthogonal_changes * change_overlap(x, x_shifted)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in optimizers:
        opt.step()
    acc = (logits.detach().argmax(1) == k).float().mean()
    return torch.stack([loss.detach(), ce.detach(), l1.detach(), acc])


def directions_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """bfloat16 autocast on CUDA when asked or (auto) when the GPU has it natively; else float32."""
    if device.type != "cuda" or amp == "off":
        return None
    return torch.bfloat16 if amp == "bf16" or bf16_supported(device) else None


@torch.no_grad()
def evaluate(G: nn.Module, A: DirectionModel, R: nn.Module, *, batches: int, batch_size: int,
             gamma: float, alpha_max: float = 6.0, alpha_min: float = 0.5, seed: int = 0,
             device: torch.device | str = "cpu", bn_batches: int = 8) -> dict[str, float]:
    """RCA and L_s on ``batches`` fresh batches, R in eval mode.

    R's BatchNorm running averages lag behind its weights (with momentum 0.1 they mix the
    statistics of the last ~20 steps, and R moves fast), so an eval-mode R scored with them
    under-reports what it has learned. The measurement therefore uses a copy of R whose
    BatchNorm statistics are first re-estimated exactly on ``bn_batches`` fresh batches of the
    training distribution (precise BatchNorm); R itself is left untouched. ``bn_batches=0``
    keeps the running averages.
    """
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    was_a = A.training
    A.eval()
    R_eval = _with_batch_statistics(G, A, R, gen, bn_batches, batch_size, alpha_max, alpha_min, device)
    correct = ce_sum = l1_sum = 0.0
    n = 0
    for _ in range(batches):
        z, k, alpha = sample_inputs(gen, batch_size, A.latent_dim, A.K, alpha_max, alpha_min, device)
        logits, alpha_hat = R_eval(G.generate(z), G.generate(z + A(k, alpha)))
        correct += float((logits.argmax(1) == k).sum())
        ce_sum += float(F.cross_entropy(logits.float(), k, reduction="sum"))
        l1_sum += float((alpha_hat.float() - alpha).abs().sum())
        n += batch_size
    A.train(was_a)
    l1 = l1_sum / n
    return {"rca": correct / n, "shift_loss": gamma * l1, "shift_l1": l1, "ce": ce_sum / n}


def _with_batch_statistics(G: nn.Module, A: DirectionModel, R: nn.Module, gen: torch.Generator,
                           batches: int, batch_size: int, alpha_max: float, alpha_min: float,
                           device: torch.device) -> nn.Module:
    """An eval-mode copy of R with BatchNorm statistics averaged exactly over fresh batches."""
    R_eval = copy.deepcopy(R)
    layers = [m for m in R_eval.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if batches > 0 and layers:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        R_eval.train()
        for _ in range(batches):
            z, k, alpha = sample_inputs(gen, batch_size, A.latent_dim, A.K, alpha_max, alpha_min, device)
            R_eval(G.generate(z), G.generate(z + A(k, alpha)))
    return R_eval.eval()


@torch.no_grad()
def direction_samples(G: nn.Module, A: DirectionModel, n_directions: int = 8,
                      shifts: tuple[float, ...] = (-6.0, -3.0, 0.0, 3.0, 6.0), seed: int = 0,
                      device: torch.device | str = "cpu") -> np.ndarray:
    """(n_directions * len(shifts), H, W): one latent shifted along the first directions."""
    device = torch.device(device)
    z = torch.randn(1, A.latent_dim, generator=torch.Generator(device=device).manual_seed(seed), device=device)
    mat = A.matrix()
    n = min(n_directions, A.K)
    s = torch.tensor(shifts, device=device, dtype=z.dtype)
    zs = (z + s[None, :, None] * mat.T[:n, None, :]).reshape(-1, A.latent_dim)
    return G.generate(zs)[:, 0].float().cpu().numpy()


# -- the engine ------------------------------------------------------------------------

def _image_size(G: nn.Module, latent_dim: int, device: torch.device) -> tuple[int, int, int]:
    with torch.no_grad():
        x = G.generate(torch.zeros(2, latent_dim, device=device))
    if x.ndim != 4:
        raise ValueError(f"generator must return (B, C, H, W) images, got shape {tuple(x.shape)}")
    return int(x.shape[1]), int(x.shape[2]), int(x.shape[3])


def train_directions(cfg: DirectionsConfig, generator: nn.Module, run_dir: str | Path,
                     stop: threading.Event | None = None) -> Iterator[Event]:
    """Validate eagerly (bad configs raise here, not at the first ``next``), then train."""
    latent_dim = getattr(generator, "latent_dim", None)
    if not isinstance(latent_dim, int) or not hasattr(generator, "generate"):
        raise TypeError("generator must expose latent_dim (int) and generate(z)")
    if cfg.variant == "ortho" and latent_dim < cfg.K:
        raise ValueError(
            f"ortho directions need K <= latent_dim: K={cfg.K} > {latent_dim}; use variant 'unit' for K > {latent_dim}")
    return locked_events(run_dir, _train(cfg, generator, Path(run_dir), stop))  # one writer per run folder


def _config_identity(cfg: DirectionsConfig) -> dict[str, Any]:
    # What must match for a checkpoint to be resumable; steps and logging may change.
    keys = ("K", "variant", "reconstructor", "init", "init_scale", "batch_size", "lr", "gamma",
            "alpha_max", "alpha_min", "seed", "generator_fingerprint")
    out = {k: getattr(cfg, k) for k in keys}
    if cfg.reconstructor_input is not None:  # (absent from the identity of older checkpoints)
        out["reconstructor_input"] = cfg.reconstructor_input
    if cfg.orthogonal_changes:
        out["orthogonal_changes"] = cfg.orthogonal_changes
    return out


def _train(cfg: DirectionsConfig, G: nn.Module, run_dir: Path, stop: threading.Event | None) -> Iterator[Event]:
    device = select_device(cfg.device)
    G = freeze(G).to(device)
    d = G.latent_dim
    if not cfg.generator_fingerprint and isinstance(getattr(G, "fingerprint", None), str):
        cfg = replace(cfg, generator_fingerprint=G.fingerprint)  # e.g. the analytic generator's own id
    preprocessing = preprocessing_of(G, cfg.generator_path or None)  # copied into the direction set
    channels, h, w = _image_size(G, d, device)
    recon_name = canonical_reconstructor(cfg.reconstructor)
    if min(h, w) < min_input_size(recon_name):
        raise ValueError(f"{recon_name} needs images of at least {min_input_size(recon_name)} pixels, got {h}x{w}")

    torch.manual_seed(cfg.seed)  # module initialisation is the global RNG's; seed it
    init_gen = torch.Generator().manual_seed(cfg.seed)
    A = DirectionModel(d, cfg.K, cfg.variant, cfg.init, cfg.init_scale, generator=init_gen).to(device)
    R = build_reconstructor(recon_name, cfg.K, channels, cfg.reconstructor_input).to(device)
    modules: dict[str, nn.Module] = {"A": A, "R": R}
    optimizers: dict[str, torch.optim.Optimizer] = {"R": torch.optim.Adam(R.parameters(), lr=cfg.lr)}
    if A.trainable:
        optimizers["A"] = torch.optim.Adam(A.parameters(), lr=cfg.lr)
    opt_list = [optimizers[k] for k in sorted(optimizers)]
    # On the CPU whatever the device: its state restores anywhere (a CUDA generator's does not).
    sample_gen = torch.Generator().manual_seed(cfg.seed + 1)
    amp = directions_amp(cfg.amp, device)
    total = cfg.total_steps
    # Host syncs cost nothing on the CPU; on a GPU each one stalls the queue of kernels.
    sync_every = cfg.sync_every or (1 if device.type == "cpu" else max(cfg.log_every, 1))

    check_run_folder(run_dir)
    run = RunDir(run_dir)
    run.clean_stale_temps()
    start = 0
    restarted = ""
    if run.has(CHECKPOINT):
        # Compare settings before loading tensors, whose shapes would not even fit.
        saved = read_meta(run.path(CHECKPOINT)).get("identity", {})
        wanted = _config_identity(cfg)
        if saved != wanted:
            diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
            raise ValueError(f"{run_dir} holds a direction run with a different configuration ({', '.join(diff)}); "
                             "use a new run folder or the same settings")
        meta = run.load(CHECKPOINT, modules, optimizers, map_location=device, generators={})
        start = int(meta["step"])
        restarted = _restore_sampler(sample_gen, run, cfg.seed, start)
    logger = ScalarLogger(run_dir)

    def save(step: int) -> Path:
        return run.save(CHECKPOINT, modules, optimizers,
                        meta={"step": step, "total_steps": total, "identity": _config_identity(cfg),
                              "config": cfg.to_dict()},
                        generators={"sample": sample_gen})

    try:
        yield Started(total_steps=total, start_step=start, run_dir=run_dir)
        if start:
            yield Message(f"resumed direction training at step {start} of {total}")
            if restarted:
                yield Message(restarted)
        A.train()
        R.train()
        window = torch.zeros(4, device=device)  # summed stats since the last log line
        window_n = 0
        pending = torch.zeros(4, device=device)  # summed stats not yet checked on the host
        pending_n = 0
        for step in range(start, total):
            if stop is not None and stop.is_set():
                _check_finite(pending.tolist() if pending_n else [], step)
                path = save(step)
                yield Stopped(step=step, checkpoint=path)
                return
            z, k, alpha = sample_inputs(sample_gen, cfg.batch_size, d, cfg.K, cfg.alpha_max, cfg.alpha_min,
                                        torch.device("cpu"))
            if cfg.orthogonal_changes:
                z, k = pair_inputs(z, k, sample_gen, cfg.K)
            z, k, alpha = (t.to(device, non_blocking=True) for t in (z, k, alpha))
            stats = direction_step(G, A, R, opt_list, z, k, alpha, cfg.gamma, amp, cfg.orthogonal_changes)
            window += stats
            window_n += 1
            pending += stats
            pending_n += 1
            done = step + 1
            log_now = done % cfg.log_every == 0 or done == total
            losses: dict[str, float] = {}
            if done % sync_every == 0 or log_now:
                both = torch.cat([stats, window / window_n]).tolist()  # the one host transfer
                _check_finite(both, done)  # the window since the last log line covers every unchecked step
                pending.zero_()
                pending_n = 0
                loss, ce, l1, acc = both[:4]
                losses = {"loss": loss, "ce": ce, "shift_loss": cfg.gamma * l1, "shift_l1": l1, "accuracy": acc}
                if log_now:
                    m = both[4:]
                    scalars = {"train/loss": m[0], "train/ce": m[1], "train/shift_loss": cfg.gamma * m[2],
                               "train/shift_l1": m[2], "train/accuracy": m[3]}
                    if cfg.variant == "ortho":
                        with torch.no_grad():
                            scalars["train/orthonormality_error"] = orthonormality_error(A.matrix())
                    logger.log(done, scalars)
                    window.zero_()
                    window_n = 0
            yield Step(step=done, total_steps=total, losses=losses)
            if cfg.sample_every and done % cfg.sample_every == 0 and done != total:
                imgs = direction_samples(G, A, seed=cfg.seed, device=device)
                logger.log_images(done, "directions", imgs)
                yield Samples(step=done, images=imgs, preprocessing=preprocessing.to_dict())
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done != total:
                _check_finite(pending.tolist() if pending_n else [], done)
                yield CheckpointSaved(step=done, path=save(done))

        _check_finite(pending.tolist() if pending_n else [], total)
        metrics = evaluate(G, A, R, batches=cfg.eval_batches, batch_size=cfg.eval_batch_size or cfg.batch_size,
                           gamma=cfg.gamma, alpha_max=cfg.alpha_max, alpha_min=cfg.alpha_min,
                           seed=cfg.seed + 10_007, device=device)
        with torch.no_grad():
            mat = A.matrix().detach().float().cpu()
        if cfg.variant == "ortho":
            metrics["orthonormality_error"] = orthonormality_error(mat)
        collapse = collapse_of(mat.numpy())
        metrics.update(collapse.metrics())
        yield Message(f"directions: {collapse.line()}")
        logger.log(total, {f"eval/{k}": v for k, v in metrics.items()})
        imgs = direction_samples(G, A, seed=cfg.seed, device=device)
        logger.log_images(total, "directions", imgs)
        yield Samples(step=total, images=imgs, preprocessing=preprocessing.to_dict())
        yield CheckpointSaved(step=total, path=save(total))
        out = write_outputs(run_dir, cfg, mat, R, metrics, total, preprocessing)
        yield Finished(step=total, output=out, metrics=metrics)
    finally:
        logger.close()


def _restore_sampler(gen: torch.Generator, run: RunDir, seed: int, step: int) -> str:
    """Put the sampling generator back where the checkpoint left it.

    Checkpoints of CUDA runs from before sampling moved to the CPU hold a CUDA
    generator state, which a CPU generator cannot take: those restart the
    stream from (seed, step) and say so. Returns that message, or "".
    """
    from safetensors import safe_open

    with safe_open(str(run.path(CHECKPOINT)), framework="pt") as fh:
        state = fh.get_tensor("rng/gen/sample") if "rng/gen/sample" in fh.keys() else None  # noqa: SIM118
    try:
        if state is None:
            raise RuntimeError("no sampling state in the checkpoint")
        gen.set_state(state)
        return ""
    except RuntimeError:
        gen.manual_seed(step_seed(seed + 1, step))
        return (f"the checkpoint's sampling state was saved on another device type; the latent stream "
                f"restarts from (seed {seed}, step {step})")


def _check_finite(values: list[float], step: int) -> None:
    """Raise if a loss (or a sum of losses since the last check) is NaN or inf."""
    if not all(np.isfinite(v) for v in values):
        raise NonFiniteLossError(
            f"non-finite direction-training loss by step {step}; stopped before writing any checkpoint or "
            "direction set from it (the generator's images or the learning rate are the usual cause)")


def write_outputs(run_dir: Path, cfg: DirectionsConfig, A: torch.Tensor, R: nn.Module,
                  metrics: dict[str, float], steps: int, preprocessing: Preprocessing | None = None) -> Path:
    recon = canonical_reconstructor(cfg.reconstructor)
    meta = {"K": cfg.K, "variant": cfg.variant, "reconstructor": recon, "reconstructor_input": cfg.reconstructor_input,
            "init": cfg.init, "steps": steps, "orthogonal_changes": cfg.orthogonal_changes,
            "batch_size": cfg.batch_size, "lr": cfg.lr, "gamma": cfg.gamma, "seed": cfg.seed,
            "generator_kind": cfg.generator_kind, "generator_path": cfg.generator_path,
            "reconstructor_file": RECONSTRUCTOR_FILE, "config": cfg.to_dict()}
    save_weights(run_dir / RECONSTRUCTOR_FILE, dict(R.state_dict()),
                 {"format": "napari-latentdirs/reconstructor/1", "arch": recon, "K": cfg.K,
                  "input_size": cfg.reconstructor_input,
                  "generator": cfg.generator_fingerprint})
    ds = DirectionSet(A=A.numpy(), method=f"voynov-{cfg.variant}", generator=cfg.generator_fingerprint,
                      metrics=dict(metrics), meta=meta,
                      preprocessing=preprocessing.to_dict() if preprocessing is not None else None)
    return ds.save(run_dir / DIRECTIONS_FILE)


def load_reconstructor(path: str | Path, channels: int = 1) -> nn.Module:
    """R from ``reconstructor.safetensors`` (eval mode); its metadata is checked against the
    tensor shapes in the file before the network is allocated."""
    path = Path(path)
    meta = read_meta(path)
    if meta.get("format") != "napari-latentdirs/reconstructor/1":
        raise ValueError(f"{path} is not a napari-latentdirs reconstructor")
    arch, K, size = meta.get("arch"), meta.get("K"), meta.get("input_size")
    if not isinstance(arch, str) or not isinstance(K, int) or isinstance(K, bool) or K < 1:
        raise WeightsFormatError(f"{path}: reconstructor metadata needs a string 'arch' and a positive integer 'K'")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
        raise WeightsFormatError(f"{path}: reconstructor 'input_size' must be an integer or null")
    try:
        with torch.device("meta"):  # shapes only
            skeleton = build_reconstructor(arch, K, channels, size)
    except (TypeError, ValueError) as exc:
        raise WeightsFormatError(f"{path}: invalid reconstructor metadata: {exc}") from exc
    check_shapes(path, {k: v.shape for k, v in skeleton.state_dict().items()}, read_header(path),
                 what=f"{arch} reconstructor")
    tensors, _ = load_weights(path)
    R = build_reconstructor(arch, K, channels, size)
    R.load_state_dict(tensors)
    return R.eval()


def resolve_generator(spec: str | Path, device: str | torch.device = "cpu",
                      weights: str | Path | None = None, weights_prefix: str | None = None) -> tuple[nn.Module, str, str]:
    """``(generator, fingerprint, kind)`` for a generator file/run folder, ``analytic[:SIZE]``,
    or a user's ``package.module:factory`` with optional ``weights`` (models/custom.py; ``weights_prefix``
    is stripped from their key names).

    ``kind`` is ``gan``, ``vae`` or ``analytic`` (it picks the paper's step count).
    """
    from ..models.custom import resolve_custom

    if (custom := resolve_custom(spec, weights, device, weights_prefix)) is not None:
        return custom
    text = str(spec)
    if text == "analytic" or text.startswith("analytic:"):
        from ..models.analytic import analytic_generator

        size = int(text.split(":", 1)[1]) if ":" in text else 32
        g = analytic_generator(size=size)
        return g.to(device), g.fingerprint, "analytic"
    from ..models.registry import generator_fingerprint, generator_meta, load_generator

    meta = generator_meta(spec)
    kind = generator_kind(str(meta.get("kind", "")))
    if kind not in PAPER_GENERATORS:
        raise ValueError(f"{spec}: unknown generator kind {meta.get('kind')!r}")
    return load_generator(spec, device=device), generator_fingerprint(spec), kind


def run_to_completion(cfg: DirectionsConfig, generator: nn.Module, run_dir: str | Path,
                      stop: threading.Event | None = None) -> Finished | Stopped:
    """Drive the engine without a UI; returns the last event (Finished or Stopped)."""
    last: Event | None = None
    for ev in train_directions(cfg, generator, run_dir, stop):
        last = ev
    assert isinstance(last, (Finished, Stopped))
    return last


__all__ = ["DIRECTIONS_FILE", "PAPER_STEPS", "RECONSTRUCTOR_FILE", "DirectionsConfig", "direction_samples",
           "direction_step", "evaluate", "freeze", "load_reconstructor", "paper_steps", "resolve_generator",
           "run_to_completion", "sample_inputs", "train_directions"]
