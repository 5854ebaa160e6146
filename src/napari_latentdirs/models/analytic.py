"""An analytic, differentiable generator whose interpretable directions are known.

``AnalyticEllipseGenerator`` renders a body-like ellipse (a bright body with
two darker "lungs" that move, scale and turn with it) on a small canvas.
Only six of its ``latent_dim = 32`` coordinates matter:

====  ==============  =====================================
coord factor          effect (through ``tanh(f / 2)``)
====  ==============  =====================================
0     ``x_position``  centre x, +-0.3 of the half-canvas
1     ``y_position``  centre y, +-0.3
2     ``width``       semi-axis along the body x, 0.3..0.7
3     ``height``      semi-axis along the body y, 0.2..0.5
4     ``rotation``    angle, +-0.6 rad
5     ``intensity``   body value, -0.1..0.8 (background -1)
====  ==============  =====================================

The other 26 coordinates change nothing, so a direction method that works
must move its directions out of them. The map from z to the six factor
pre-activations is ``first_layer`` (an ``nn.Linear`` whose rows select the
live coordinates), the same attribute SeFa and GANSpace read on the DCGAN
and the VAE; its weights are the generator's parameters, so tests can check
that direction training leaves them bitwise unchanged.

It satisfies :class:`~napari_latentdirs.models.interface.LatentGenerator`;
the labeller and the report reuse it as a generator with ground truth.
"""

from __future__ import annotations

import torch
from torch import nn

FACTOR_NAMES: tuple[str, ...] = ("x_position", "y_position", "width", "height", "rotation", "intensity")
FINGERPRINT_PREFIX = "analytic-ellipse/1"


class AnalyticEllipseGenerator(nn.Module):
    def __init__(self, latent_dim: int = 32, size: int = 32,
                 live_coords: tuple[int, ...] = (0, 1, 2, 3, 4, 5)) -> None:
        super().__init__()
        if len(live_coords) != len(FACTOR_NAMES) or len(set(live_coords)) != len(live_coords):
            raise ValueError(f"need {len(FACTOR_NAMES)} distinct live coordinates, got {live_coords}")
        if not all(0 <= c < latent_dim for c in live_coords):
            raise ValueError(f"live coordinates {live_coords} out of range for latent_dim {latent_dim}")
        if size < 16:
            raise ValueError(f"canvas size must be >= 16, got {size}")
        self.latent_dim = int(latent_dim)
        self.size = int(size)
        self.live_coords = tuple(int(c) for c in live_coords)
        self.first_layer = nn.Linear(latent_dim, len(FACTOR_NAMES))
        with torch.no_grad():
            self.first_layer.weight.zero_()
            self.first_layer.bias.zero_()
            for row, col in enumerate(self.live_coords):
                self.first_layer.weight[row, col] = 1.0
        ys = torch.linspace(-1.0, 1.0, size)
        gy, gx = torch.meshgrid(ys, ys, indexing="ij")
        self.register_buffer("grid_x", gx.clone(), persistent=False)
        self.register_buffer("grid_y", gy.clone(), persistent=False)
        # r changes by (2/size)/a per pixel at the rim; this keeps the rim one to two pixels wide.
        self.sharpness = 0.75 * size

    @property
    def fingerprint(self) -> str:
        return f"{FINGERPRINT_PREFIX}/d{self.latent_dim}/s{self.size}/live{','.join(map(str, self.live_coords))}"

    def factor_directions(self) -> torch.Tensor:
        """(latent_dim, 6): the unit latent direction of each factor, in FACTOR_NAMES order."""
        eye = torch.zeros(self.latent_dim, len(FACTOR_NAMES))
        for j, c in enumerate(self.live_coords):
            eye[c, j] = 1.0
        return eye

    def factors(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Physical factor values for latents ``z`` (B, d)."""
        t = torch.tanh(self.first_layer(z) / 2.0)
        return {
            "x_position": 0.3 * t[:, 0],
            "y_position": 0.3 * t[:, 1],
            "width": 0.5 + 0.2 * t[:, 2],
            "height": 0.35 + 0.15 * t[:, 3],
            "rotation": 0.6 * t[:, 4],
            "intensity": 0.35 + 0.45 * t[:, 5],
        }

    def _ellipse(self, px: torch.Tensor, py: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        r = torch.sqrt((px / a) ** 2 + (py / b) ** 2 + 1e-6)
        # Scaled by the semi-axis so the rim has the same width in pixels at any size.
        return torch.sigmoid((1.0 - r) * self.sharpness * torch.minimum(a, b))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim == 4 and z.shape[2:] == (1, 1):
            z = z[:, :, 0, 0]
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected z of shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        f = self.factors(z)
        v = lambda t: t[:, None, None]  # noqa: E731 - broadcast (B,) over the canvas
        cx, cy, a, b = v(f["x_position"]), v(f["y_position"]), v(f["width"]), v(f["height"])
        th, inten = v(f["rotation"]), v(f["intensity"])
        dx, dy = self.grid_x - cx, self.grid_y - cy
        c, s = torch.cos(th), torch.sin(th)
        p = c * dx + s * dy  # body frame
        q = -s * dx + c * dy
        body = self._ellipse(p, q, a, b)
        lung_a, lung_b = 0.3 * a, 0.55 * b
        lungs = self._ellipse(p - 0.45 * a, q, lung_a, lung_b) + self._ellipse(p + 0.45 * a, q, lung_a, lung_b)
        img = -1.0 + (inten + 1.0) * body * (1.0 - 0.7 * lungs.clamp(max=1.0))
        return img[:, None]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generate(z)


def analytic_generator(size: int = 32, latent_dim: int = 32) -> AnalyticEllipseGenerator:
    """The analytic generator in eval mode with frozen parameters, like ``load_generator``."""
    g = AnalyticEllipseGenerator(latent_dim=latent_dim, size=size)
    return g.eval().requires_grad_(False)


def best_abs_cosines(A: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """For each true direction (column of ``truth``), the best |cos| with a column of ``A``."""
    An = A / A.norm(dim=0, keepdim=True).clamp_min(1e-12)
    Tn = truth / truth.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return (Tn.T @ An).abs().max(dim=1).values


__all__ = ["FACTOR_NAMES", "AnalyticEllipseGenerator", "analytic_generator", "best_abs_cosines"]
