"""The reference's augmentation: a small random affine per slice.

``torchvision.transforms.RandomAffine(degrees=(-1, 1), scale=(1, 1.1))`` with
bilinear sampling, done here on the whole batch on the training device from
pre-drawn parameters so runs are reproducible and resumable. Pixels that
come from outside the slice are air (model value -1, i.e. -1000 HU), not 0
(which would be +500 HU in model space).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_DEGREES = 1.0
SCALE_RANGE = (1.0, 1.1)


def draw_affine(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Map uniforms ``u`` (B, 2) in [0, 1) to (angle in degrees, scale)."""
    angle = (2.0 * u[:, 0] - 1.0) * MAX_DEGREES
    scale = SCALE_RANGE[0] + u[:, 1] * (SCALE_RANGE[1] - SCALE_RANGE[0])
    return angle, scale


def random_affine(x: torch.Tensor, angle_deg: torch.Tensor, scale: torch.Tensor, fill: float = -1.0) -> torch.Tensor:
    """Rotate by ``angle_deg`` and zoom by ``scale`` about the centre, per sample."""
    theta = torch.deg2rad(angle_deg.to(torch.float32))
    cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale
    zero = torch.zeros_like(cos)
    # affine_grid maps output to input coordinates, hence the inverse (1/scale, -angle).
    mat = torch.stack([torch.stack([cos, sin, zero], -1), torch.stack([-sin, cos, zero], -1)], 1)
    grid = F.affine_grid(mat.to(x.device, x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill
