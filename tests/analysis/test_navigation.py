"""Shifted-stack generation: shift-0 frame is G(z), streaming order, newest request wins."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_latentdirs.analysis import navigation as nav
from napari_latentdirs.data.preprocess import DEFAULT
from napari_latentdirs.models.dcgan import Generator, dcgan_config


@pytest.fixture(scope="module")
def gen() -> Generator:
    torch.manual_seed(1)
    g = Generator(dcgan_config("tiny", image_size=32)).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    return g


def test_shift_grid_contains_exact_zero_and_endpoints():
    g = nav.shift_grid(-3.0, 5.0, 9)
    assert g[0] == -3.0 and g[-1] == 5.0 and (g == 0.0).sum() == 1
    assert np.all(np.diff(g) > 0)
    assert (nav.shift_grid(1.0, 2.0, 3) == 0.0).sum() == 0
    with pytest.raises(ValueError):
        nav.shift_grid(2.0, 1.0, 5)


def test_shift_zero_frame_is_G_of_z_and_shifts_follow_direction(gen):
    z = nav.random_latents(3, gen.latent_dim, seed=4)
    a = np.random.default_rng(0).standard_normal(gen.latent_dim).astype(np.float32)
    shifts = nav.shift_grid(-2, 2, 5)
    st = nav.StackStreamer(gen, chunk_size=4).full_stack(nav.StackRequest(z, a, shifts, visible=(1, 3)))
    assert st.shape == (3, 5, 32, 32)
    with torch.no_grad():
        g0 = gen.generate(torch.from_numpy(z))[:, 0].numpy()
        g_last = gen.generate(torch.from_numpy(z + 2.0 * a))[:, 0].numpy()
    k0 = int(np.flatnonzero(shifts == 0)[0])
    np.testing.assert_allclose(st[:, k0], DEFAULT.model_to_hu(g0), atol=1e-3)
    np.testing.assert_allclose(st[:, -1], DEFAULT.model_to_hu(g_last), atol=1e-3)
    assert not np.allclose(st[:, 0], st[:, k0])


def test_stream_visible_first_alone_then_chunks(gen):
    req = nav.StackRequest(np.zeros((2, gen.latent_dim)), np.ones(gen.latent_dim), np.linspace(-1, 1, 7), visible=(1, 5))
    chunks = list(nav.StackStreamer(gen, chunk_size=4).stream(req))
    assert len(chunks[0].frames) == 1 and (chunks[0].latent_idx[0], chunks[0].shift_idx[0]) == (1, 5)
    seen = {(int(i), int(s)) for c in chunks for i, s in zip(c.latent_idx, c.shift_idx)}
    assert seen == {(i, s) for i in range(2) for s in range(7)}
    assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
    # the visible latent is finished before any other latent starts
    flat = [int(i) for c in chunks for i in c.latent_idx]
    assert flat[:7] == [1] * 7


def test_newest_request_wins(gen):
    box = nav.LatestRequest()
    streamer = nav.StackStreamer(gen, chunk_size=2)
    z = np.zeros((1, gen.latent_dim))
    first = box.submit(nav.StackRequest(z, np.ones(gen.latent_dim), np.linspace(-1, 1, 9)))
    taken = box.take(0)
    it = streamer.stream(taken, lambda: box.is_current(first.ticket))
    next(it)
    second = box.submit(nav.StackRequest(z, -np.ones(gen.latent_dim), np.linspace(-1, 1, 9)))
    assert list(it) == []  # the stale stream stops at its next chunk
    # a burst of submissions leaves only the newest one waiting
    for _ in range(3):
        last = box.submit(nav.StackRequest(z, np.ones(gen.latent_dim), np.linspace(0, 1, 3)))
    assert box.take(0).ticket == last.ticket > second.ticket
    assert box.take(0) is None


def test_serve_loop_stops_on_request(gen):
    box, stop = nav.LatestRequest(), threading.Event()
    box.submit(nav.StackRequest(np.zeros((1, gen.latent_dim)), np.ones(gen.latent_dim), [0.0, 1.0]))
    out = []
    for chunk in nav.serve(nav.StackStreamer(gen), box, stop, poll_s=0.01):
        out.append(chunk)
        if chunk.done:
            stop.set()
    assert out[-1].done and sum(len(c.frames) for c in out) == 2


def test_window_limits():
    assert nav.window_limits("lung") == (-1350.0, 150.0)
    assert nav.window_limits("mediastinum") == (-125.0, 225.0)
    assert nav.window_limits("bone") == (-500.0, 1500.0)
    with pytest.raises(ValueError):
        nav.window_limits("brain")

