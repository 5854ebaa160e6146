"""Bring your own generator: ``module:factory`` (+ weights) everywhere a generator is accepted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from napari_latentdirs.directions.voynov import resolve_generator
from napari_latentdirs.models.custom import (
    CustomGeneratorError,
    is_factory_spec,
    load_custom_generator,
)

HERE = __name__  # this module is importable by name: its factories make the specs below


class TinyG(nn.Module):
    """A generator as a user would write one: latent_dim, forward(z) -> (B, 1, 16, 16) in [-1, 1]."""

    def __init__(self, latent_dim: int = 6, out_scale: float = 1.0, shape: str = "bchw") -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.fc = nn.Linear(latent_dim, 16 * 16)
        self.out_scale = out_scale
        self.shape = shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.fc(z)) * self.out_scale
        return x.view(-1, 16, 16) if self.shape == "bhw" else x.view(-1, 1, 16, 16)


def make_tiny() -> TinyG:
    torch.manual_seed(3)
    return TinyG()


def make_no_latent_dim() -> nn.Module:
    g = TinyG()
    del g.latent_dim
    return g


def make_wrong_shape() -> TinyG:
    return TinyG(shape="bhw")


def make_out_of_range() -> TinyG:
    return TinyG(out_scale=3.0)


def make_rounding() -> TinyG:
    return TinyG(out_scale=1.0 + 1e-5)  # tanh * (1 + 1e-5): rounding, accepted


def make_not_a_module() -> str:
    return "generator"


def test_spec_detection():
    assert is_factory_spec("pkg.mod:make_g") and is_factory_spec(f"{HERE}:make_tiny")
    assert not is_factory_spec("analytic:32") and not is_factory_spec("runs/gan") and not is_factory_spec("analytic")


def test_a_generator_defined_here_loads_and_generates():
    g = load_custom_generator(f"{HERE}:make_tiny")
    ref = make_tiny()
    z = torch.randn(3, 6)
    np.testing.assert_array_equal(g.generate(z).numpy(), ref(z).detach().numpy())
    assert g.latent_dim == 6 and not any(p.requires_grad for p in g.parameters())
    gen, fp, kind = resolve_generator(f"{HERE}:make_tiny")
    assert fp.startswith("custom:") and kind == "gan" and gen.latent_dim == 6
    assert resolve_generator(f"{HERE}:make_tiny")[1] == fp  # same spec, same fingerprint


@pytest.mark.parametrize(("factory", "message"), [
    ("make_no_latent_dim", "latent_dim"),
    ("make_wrong_shape", r"\(B, C, H, W\)"),
    ("make_out_of_range", r"\[-1, 1\]"),
    ("make_not_a_module", "not a torch.nn.Module"),
    ("no_such_factory", "has no no_such_factory"),
])
def test_a_wrong_interface_is_a_clear_error(factory, message):
    with pytest.raises(CustomGeneratorError, match=message):
        load_custom_generator(f"{HERE}:{factory}")


def test_rounding_beyond_one_is_accepted_and_missing_modules_are_named():
    load_custom_generator(f"{HERE}:make_rounding")
    with pytest.raises(CustomGeneratorError, match="cannot import no_such_pkg"):
        load_custom_generator("no_such_pkg.mod:make")


def test_weights_from_safetensors_and_from_a_state_dict(tmp_path):
    from safetensors.torch import save_file

    trained = TinyG()
    with torch.no_grad():
        trained.fc.weight.mul_(0.5).add_(0.01)
    sd = {k: v.contiguous() for k, v in trained.state_dict().items()}
    save_file(sd, str(tmp_path / "w.safetensors"))
    torch.save(sd, tmp_path / "w.pt")
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "ckpt.pt")
    z = torch.randn(2, 6)
    want = trained(z).detach()
    fps = set()
    for name in ("w.safetensors", "w.pt", "ckpt.pt"):
        g, fp, _ = resolve_generator(f"{HERE}:make_tiny", weights=tmp_path / name)
        torch.testing.assert_close(g.generate(z), want)
        fps.add(fp)
    assert len(fps) == 3  # the fingerprint follows the weights file, byte for byte
    assert resolve_generator(f"{HERE}:make_tiny")[1] not in fps
    # wrong tensors: named, not a traceback from load_state_dict
    save_file({"fc.weight": torch.zeros(3, 3)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CustomGeneratorError, match="do not fit"):
        load_custom_generator(f"{HERE}:make_tiny", tmp_path / "bad.safetensors")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_weights_never_run_pickled_code(tmp_path):
    torch.save({"fc.weight": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CustomGeneratorError, match="weights_only"):
        load_custom_generator(f"{HERE}:make_tiny", tmp_path / "evil.pt")
    with pytest.raises(CustomGeneratorError, match="module:factory"):
        resolve_generator("analytic", weights=tmp_path / "evil.pt")


PLAIN_MODULE = textwrap.dedent('''
    """A plain pure-Python generator module (no TorchScript, no torch.export)."""
    import torch
    from torch import nn


    class Ellipse(nn.Module):
        def __init__(self):
            super().__init__()
            self.latent_dim = 4
            self.mix = nn.Linear(4, 3)

        def forward(self, z):
            p = torch.tanh(self.mix(z))
            yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
            r = ((xx - 0.3 * p[:, :1, None]) / (0.5 + 0.2 * p[:, 1:2, None])) ** 2 + (yy / (0.5 + 0.2 * p[:, 2:3, None])) ** 2
            return torch.tanh(4 * (1 - r))[:, None]


    def make_g():
        torch.manual_seed(0)
        return Ellipse()
''')


@pytest.fixture
def plain_module(tmp_path):
    pkg = tmp_path / "usergen"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "ellipse.py").write_text(PLAIN_MODULE)
    sys.path.insert(0, str(tmp_path))
    yield tmp_path, "usergen.ellipse:make_g"
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("usergen")]:
        del sys.modules[name]


def _cli(args, root):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), *sys.path]))
    return subprocess.run([sys.executable, "-m", "napari_latentdirs.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=root)


def test_cli_directions_and_baseline_with_a_plain_module_and_weights(plain_module):
    from safetensors.torch import save_file

    root, spec = plain_module
    g = load_custom_generator(spec)
    save_file({k: v.contiguous() for k, v in g.net.state_dict().items()}, str(root / "g.safetensors"))
    res = _cli(["directions", "--generator", spec, "--generator-weights", str(root / "g.safetensors"), "--out",
                str(root / "run"), "--K", "3", "--steps", "3", "--batch-size", "4", "--eval-batches", "1",
                "--device", "cpu", "--json"], root)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    from napari_latentdirs.directions.set import DirectionSet

    ds = DirectionSet.load(out["output"])
    assert ds.K == 3 and ds.latent_dim == 4
    assert ds.generator == resolve_generator(spec, weights=root / "g.safetensors")[1]
    res = _cli(["baseline", "--generator", spec, "--method", "sefa", "--out", str(root / "sefa.safetensors"), "--K", "2"], root)
    assert res.returncode == 0, res.stderr[-3000:]
    assert DirectionSet.load(root / "sefa.safetensors").K == 2
    # a wrong interface is one clear line, exit code 2
    res = _cli(["baseline", "--generator", f"{spec}_missing", "--method", "random", "--out", str(root / "x.safetensors")], root)
    assert res.returncode == 2 and "error: generator usergen.ellipse:make_g_missing" in res.stderr
