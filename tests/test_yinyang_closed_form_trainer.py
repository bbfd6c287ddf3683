"""The independent closed-form Yin-Yang trainer (scaling_runs/yinyang_ttfs_closed_form.py, docs/first_spike_time.md):
its spike times against a brute-force threshold search on the voltage, its hand-chained gradients against central
finite differences of its loss, and its batch protocol (every batch either steps or is bumped)."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

from nestgrad.tasks import yinyang

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scaling_runs"))
import yinyang_ttfs_closed_form as cf  # noqa: E402


def brute_force_first_crossing(t_in: np.ndarray, w: np.ndarray, theta: float = 1.0) -> float:
    """First time v(t) = sum_i w_i (t - t_i) exp(-(t - t_i)) reaches theta: scanned on a 1e-3 grid up to 12 tau_s,
    then bisected to 1e-14 (a crossing narrower than the grid would be missed; the random cases below have none)."""
    grid = np.arange(0.0, 12.0, 1e-3)

    def v(t: np.ndarray) -> np.ndarray:
        s = t[..., None] - t_in
        return np.sum(np.where(s > 0, w * s * np.exp(-np.where(s > 0, s, 0.0)), 0.0), axis=-1)

    above = np.flatnonzero(v(grid) >= theta)
    if above.size == 0:
        return np.inf
    lo, hi = grid[above[0] - 1], grid[above[0]]
    while hi - lo > 1e-14:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if v(np.array(mid)) >= theta else (mid, hi)
    return hi


def test_spike_times_equal_a_brute_force_threshold_search() -> None:
    rng = np.random.default_rng(3)
    t_in = rng.uniform(0.1, 3.0, (40, 6))
    t_in[rng.random(t_in.shape) < 0.15] = np.inf  # some inputs silent
    w = rng.normal(0.8, 1.0, (6, 4))
    closed = cf.first_spike_times(t_in, w)
    brute = np.array([[brute_force_first_crossing(t_in[b], w[:, j]) for j in range(4)] for b in range(40)])
    assert np.array_equal(np.isfinite(closed), np.isfinite(brute))
    assert np.isfinite(closed).sum() > 60  # most neurons spike: the comparison covers many causal sets
    # 1e-9 absolute in tau_s: the bisection resolves 1e-14, the closed form is exact to rounding
    np.testing.assert_allclose(closed[np.isfinite(closed)], brute[np.isfinite(brute)], rtol=0, atol=1e-9)


@pytest.mark.parametrize("missing_t", [4.0, 3.0])
def test_gradients_equal_central_finite_differences(missing_t: float) -> None:
    rng = np.random.default_rng(11)
    data = yinyang.split("train", 300)
    recipe = cf.Recipe(max_dw_norm=np.inf)  # no clipping: the gradient of the loss itself
    net = cf.Network(rng.normal(1.5, 0.8, (5, 120)), rng.normal(0.5, 0.8, (121, 3)), recipe)
    values, labels = data.inputs[:40], data.labels[:40]
    _, g_hidden, g_out = net.gradients(values, labels, missing_t)

    def loss() -> float:
        o = net.forward(values)[3]
        return cf.first_spike_loss(np.where(np.isfinite(o), o, missing_t), labels)[0]

    eps = 1e-6
    checked = 0
    for w, g in ((net.w_hidden, g_hidden), (net.w_out, g_out)):
        scale = np.abs(g).max()
        for idx in zip(*np.unravel_index(rng.choice(w.size, 25, replace=False), w.shape), strict=True):
            w0 = w[idx]
            w[idx] = w0 + eps
            up = loss()
            w[idx] = w0 - eps
            down = loss()
            w[idx] = w0
            # central differences of a smooth loss: error ~eps^2 * third derivative + rounding ~1e-16 / eps
            assert abs((up - down) / (2 * eps) - g[idx]) <= 1e-6 * scale, (idx, g[idx], (up - down) / (2 * eps))
            checked += abs(g[idx]) > 1e-3 * scale
    assert checked >= 10  # enough of the sampled weights carry a real gradient


def test_clipping_drops_a_points_gradient_into_a_neuron_whole() -> None:
    rng = np.random.default_rng(5)
    data = yinyang.split("train", 300)
    free = cf.Network(rng.normal(1.5, 0.8, (5, 120)), rng.normal(0.5, 0.8, (121, 3)), cf.Recipe(max_dw_norm=np.inf))
    values, labels = data.inputs[:1], data.labels[:1]  # one point: its gradient is the batch gradient
    _, gh, go = free.gradients(values, labels, 4.0)
    limit = 0.5 * np.abs(go).max(axis=0).max()
    clipped = cf.Network(free.w_hidden, free.w_out, cf.Recipe(max_dw_norm=limit))
    _, _, go_c = clipped.gradients(values, labels, 4.0)
    for j in range(3):
        expected = 0.0 if np.abs(go[:, j]).max() > limit else go[:, j]
        np.testing.assert_array_equal(go_c[:, j], expected)
    assert np.any(np.abs(go).max(axis=0) > limit) and np.any(go_c != 0)


@pytest.mark.parametrize("step_on_bump", [False, True])
def test_every_batch_steps_or_is_bumped_and_the_network_learns(step_on_bump: bool) -> None:
    # output weights around 0 (Göltz et al.: 0.5) so that outputs miss spikes from the start
    recipe = cf.Recipe(epochs=3, w_out=(0.0, 0.8), step_on_bump=step_on_bump)
    run = cf.train(recipe, seed=1, log=False)
    batches = 3 * -(-5000 // recipe.batch)
    if step_on_bump:
        assert run["optimizer_steps"] == batches
    else:
        assert run["optimizer_steps"] + run["bumped_batches"] == batches
    assert run["bumped_batches"] > 0  # outputs missed spikes: the protocol is exercised
    assert run["test_accuracy"] > 0.55  # chance is 1/3
    assert run["validation_accuracy"] > 0.55


def test_a_bumped_batch_steps_with_the_gradient_of_its_own_forward_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """With step_on_bump, as nestgrad's weight_bump_skips_step = false: the gradient is that of the batch's forward
    pass at the weights before the bump (the bump is added on top), never one at the bumped weights."""
    seen: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    checked = {"gradients": 0}
    forward, gradients = cf.Network.forward, cf.Network.gradients

    def recording_forward(self: cf.Network, values: np.ndarray) -> tuple[np.ndarray, ...]:
        seen["weights"] = (self.w_hidden.copy(), self.w_out.copy())
        return forward(self, values)

    def checking_gradients(self: cf.Network, *args: object, **kwargs: object) -> tuple[float, np.ndarray, np.ndarray]:
        np.testing.assert_array_equal(self.w_hidden, seen["weights"][0])
        np.testing.assert_array_equal(self.w_out, seen["weights"][1])
        checked["gradients"] += 1
        return gradients(self, *args, **kwargs)

    monkeypatch.setattr(cf.Network, "forward", recording_forward)
    monkeypatch.setattr(cf.Network, "gradients", checking_gradients)
    run = cf.train(cf.Recipe(epochs=1, w_out=(0.0, 0.8), step_on_bump=True), seed=1, log=False)
    assert run["bumped_batches"] > 0
    assert checked["gradients"] == run["optimizer_steps"] == -(-5000 // 150)


@pytest.mark.parametrize(("doubling", "bump_max", "largest"), [(False, np.inf, 0.0005), (True, 0.002, 0.002)])
def test_bumps_without_doubling_or_with_a_cap(doubling: bool, bump_max: float, largest: float) -> None:
    recipe = cf.Recipe(epochs=3, w_out=(0.0, 0.8), step_on_bump=True, bump_doubling=doubling, bump_max=bump_max)
    run = cf.train(recipe, seed=1, log=False)
    q = run["bump_value_quantiles_last_10_epochs"]
    assert run["bumped_batches"] > 10
    assert q["1.0"] == largest  # doubling reached the cap (or never ran)
    assert q["0.5"] >= recipe.bump


def test_the_mean_of_the_last_epoch_alone_is_the_final_network() -> None:
    """--average-epochs 1 scores the weights at the end of the last epoch: the final network's accuracies."""
    run = cf.train(cf.Recipe(epochs=2, step_on_bump=True, average_epochs=1), seed=3, log=False)
    assert run["averaged_weights_test_accuracy"] == run["test_accuracy"]
    assert run["averaged_weights_validation_accuracy"] == run["validation_accuracy"]
    assert cf.train(cf.Recipe(epochs=1), seed=3, log=False)["averaged_weights_test_accuracy"] is None
