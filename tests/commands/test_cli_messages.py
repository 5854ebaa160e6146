"""What the CLI prints (issue 19, item 5): ``train`` without a bogus flag or a bare ``{}``,
``directions`` as a short summary with its warning first (JSON on request), and a wrapped state
dict whose keys differ by a prefix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from napari_latentdirs.cli import main
from napari_latentdirs.data.cache import build_cache
from napari_latentdirs.models.custom import CustomGeneratorError, load_custom_generator
from napari_latentdirs.phantom.sampling import sample_slices


def _phantom_cache(path, patients: int, per_patient: int, test_fraction: float):
    x, _ = sample_slices(patients * per_patient, 0)
    ids = [f"P{i // per_patient}" for i in range(len(x))]
    return build_cache(path, x, patient_ids=ids, test_fraction=test_fraction, dtype="float32")


def _train(cache, out, capsys) -> list[str]:
    code = main(["train", "gan", "--data", str(cache), "--out", str(out), "--preset", "tiny", "--max-steps", "2",
                 "--epochs", "1", "--batch", "8", "--no-fid", "--device", "cpu"])
    assert code == 0
    return capsys.readouterr().out.splitlines()


def test_train_on_a_small_cache_scores_what_it_can_and_ends_with_a_plain_line(tmp_path, capsys):
    cache = _phantom_cache(tmp_path / "cache", patients=8, per_patient=12, test_fraction=0.5)
    n_test = len(cache.indices("test"))
    cache.close()
    assert 40 <= n_test < 400  # fewer than the 2 x 200 samples the quality check asks for by default
    lines = _train(tmp_path / "cache", tmp_path / "run", capsys)
    text = "\n".join(lines)
    assert "--n" not in text and "not measured" not in text
    assert f"generator quality: {n_test // 2} samples" in text  # scored with the samples the test split holds
    assert lines[-1] == f"finished at step 2: generator {tmp_path / 'run' / 'generator.safetensors'}"


def test_train_on_a_tiny_cache_says_why_quality_is_not_measured(tmp_path, capsys):
    _phantom_cache(tmp_path / "cache", patients=8, per_patient=4, test_fraction=0.25).close()
    lines = _train(tmp_path / "cache", tmp_path / "run", capsys)
    note = next(line for line in lines if "quality not measured" in line)
    assert "--n" not in note and "holds only" in note and "more patients" in note
    assert not lines[-1].endswith("{}")


def test_directions_prints_a_summary_warning_first_and_json_behind_a_flag(tmp_path, capsys):
    common = ["directions", "--generator", "analytic", "--K", "8", "--steps", "2", "--batch-size", "4",
              "--eval-batches", "1", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("warning: directions not learned: RCA ") and "chance 0.125" in lines[0]
    assert not any(line.lstrip().startswith(("{", '"')) for line in lines)  # no raw JSON
    assert any(line.startswith("next: latentdirs label ") for line in lines)
    assert main([*common, "--out", str(tmp_path / "b"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rca"] < 0.5 and doc["output"].endswith("directions.safetensors")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 4
        self.layers = nn.Sequential(*[nn.Linear(4, 4) for _ in range(29)], nn.Linear(4, 32 * 32))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.layers(z)).view(-1, 1, 32, 32)


class Wrapper(nn.Module):
    """A MONAI-style training wrapper that holds the network as ``self.net``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = Net()
        self.ema = Net()


def make_net() -> Net:
    return Net()


SPEC = f"{__name__}:make_net"


def test_a_wrapped_state_dict_loads_by_its_prefix_and_a_misfit_is_one_line(tmp_path):
    torch.manual_seed(1)
    w = Wrapper()
    net_only = {k: v for k, v in w.state_dict().items() if k.startswith("net.")}
    torch.save(net_only, tmp_path / "wrapped.pt")
    z = torch.randn(2, 4)
    want = w.net(z).detach()
    g = load_custom_generator(SPEC, tmp_path / "wrapped.pt")  # the one prefix that fits: stripped
    torch.testing.assert_close(g.generate(z), want)
    # two copies (net.*, ema.*): ambiguous, so the user names one
    torch.save(w.state_dict(), tmp_path / "both.pt")
    with pytest.raises(CustomGeneratorError, match="'ema.', 'net.' each hold a copy") as err:
        load_custom_generator(SPEC, tmp_path / "both.pt")
    assert "\n" not in str(err.value)
    torch.testing.assert_close(load_custom_generator(SPEC, tmp_path / "both.pt", weights_prefix="net.").generate(z), want)
    torch.testing.assert_close(load_custom_generator(SPEC, tmp_path / "both.pt", weights_prefix="ema").generate(z),
                               w.ema(z).detach())
    # a prefix plus missing tensors: one line that names the prefix, not a list of 60 keys
    torch.save({k: v for k, v in net_only.items() if not k.startswith("net.layers.29")}, tmp_path / "part.pt")
    with pytest.raises(CustomGeneratorError) as err:
        load_custom_generator(SPEC, tmp_path / "part.pt")
    msg = str(err.value)
    assert "\n" not in msg and "prefix 'net.'" in msg and len(msg) < 400


def test_the_cli_accepts_weights_prefix(tmp_path, capsys):
    torch.save(Wrapper().state_dict(), tmp_path / "both.pt")
    args = ["baseline", "--generator", SPEC, "--generator-weights", str(tmp_path / "both.pt"), "--method", "random",
            "--K", "2", "--out", str(tmp_path / "r.safetensors")]
    assert main(args) == 2
    assert "--weights-prefix" in capsys.readouterr().err
    assert main([*args, "--weights-prefix", "net."]) == 0
    assert np.isfinite(json.loads(capsys.readouterr().out)["K"])
