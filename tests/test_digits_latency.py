"""Latency-coded digits (nestgrad.tasks.digits_latency, issue 20 item 8). No NEST needed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nestgrad.errors import ConfigError
from nestgrad.reference.eventprop import Trial
from nestgrad.tasks import accuracy
from nestgrad.tasks.digits_latency import (
    DigitsLatency,
    DigitsLatencyConfig,
    latency_times,
    stratified_split,
    upsample_bilinear,
)


@pytest.fixture(scope="module")
def data() -> DigitsLatency:
    return DigitsLatency()


def test_shapes_and_split_sizes(data):
    assert data.n_in == 784 and data.n_out == 10
    times, labels = data.arrays("train")
    assert times.shape == (1438, 784) and labels.shape == (1438,)
    t_test, l_test = data.arrays("test")
    assert t_test.shape == (359, 784) and l_test.shape == (359,)
    # the two splits partition the 1,797 digits
    both = np.concatenate([data.indices["train"], data.indices["test"]])
    assert np.array_equal(np.sort(both), np.arange(1797))


def test_split_is_stratified(data):
    """Each class contributes round(n_class * 0.2) images to the test set."""
    per_class = np.bincount(data.labels, minlength=10)
    test_counts = np.bincount(data.labels[data.indices["test"]], minlength=10)
    assert np.array_equal(test_counts, np.round(per_class * 0.2).astype(int))
    train_counts = np.bincount(data.labels[data.indices["train"]], minlength=10)
    assert np.array_equal(train_counts + test_counts, per_class)
    assert test_counts.min() >= 35 and test_counts.max() <= 37


def test_one_spike_per_lit_pixel_and_none_for_dark_ones(data):
    """Every pixel above the threshold spikes exactly once (in every form), every other pixel never."""
    cfg = data.config
    intensity = data.images.reshape(len(data.labels), -1)
    assert np.array_equal(np.isfinite(data.times), intensity > cfg.threshold)
    raster = data.raster("test", 1.0, range(20))
    times, _ = data.arrays("test", range(20))
    assert np.array_equal(raster.sum(axis=1), np.isfinite(times).astype(int))
    trials = data.trials("test", range(3))
    for trial, row in zip(trials, times[:3], strict=True):
        assert isinstance(trial, Trial)
        counts = np.array([len(train) for train in trial.inputs["in"]])
        assert np.array_equal(counts, np.isfinite(row).astype(int))
        assert all(tr[0] == t for tr, t in zip(trial.inputs["in"], row, strict=True) if tr)


def test_spike_times_fall_in_the_window_and_decrease_with_intensity(data):
    cfg = data.config
    lit = np.isfinite(data.times)
    t = data.times[lit]
    x = data.images.reshape(len(data.labels), -1)[lit]
    assert t.min() >= cfg.t_min and t.max() < cfg.t_max <= cfg.duration
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(t[order]) <= 0)  # brighter -> earlier
    assert np.any(x == 1.0) and t[x == 1.0].max() == cfg.t_min  # full intensity spikes at t_min
    # the formula, on chosen intensities
    got = latency_times(np.array([1.0, 0.5, 0.25, 1e-3, 0.0]), cfg)
    assert got[:3] == pytest.approx([2.0, 10.0, 14.0])
    assert np.isinf(got[3]) and np.isinf(got[4])


def test_upsampling_is_bilinear_of_pixel_centres():
    img = np.arange(64, dtype=float).reshape(1, 8, 8)  # value = 8 row + col: linear, so interpolation is exact
    up = upsample_bilinear(img, 28)[0]
    c = np.clip((np.arange(28) + 0.5) * 8 / 28 - 0.5, 0, 7)
    assert up == pytest.approx(8 * c[:, None] + c[None, :], abs=1e-12)
    const = upsample_bilinear(np.full((2, 8, 8), 0.375), 28)
    assert np.all(const == 0.375)


def test_determinism_and_seed_dependence():
    a, b = DigitsLatency(), DigitsLatency()
    assert np.array_equal(a.indices["test"], b.indices["test"])
    assert np.array_equal(a.arrays("test")[0], b.arrays("test")[0])
    c = DigitsLatency(DigitsLatencyConfig(split_seed=7))
    assert not np.array_equal(a.indices["test"], c.indices["test"])
    assert np.array_equal(stratified_split(a.labels, 0.2, 7)[1], c.indices["test"])


def test_trial_batch_for_nest_networks(data):
    batch = data.trial_batch("train", 0.5, [0, 5, 9])
    _, labels = data.arrays("train", [0, 5, 9])
    assert batch.trial_steps == 40 and batch.input_spikes.shape == (120, 784)
    assert np.array_equal(batch.labels, labels)
    assert np.array_equal(batch.target.reshape(3, 40, 10).argmax(-1), np.repeat(labels[:, None], 40, axis=1))
    assert np.all(batch.learning_window == 1.0)
    # a readout equal to the target is classified correctly by the package's accuracy
    assert accuracy(batch.target, batch) == 1.0


def test_trial_batch_gap_is_silent_and_outside_the_learning_window(data):
    batch = data.trial_batch("test", 1.0, [2, 3], gap=40.0)
    assert batch.trial_steps == 60 and batch.steps == 120
    spikes = batch.input_spikes.reshape(2, 60, 784)
    window = batch.learning_window.reshape(2, 60)
    assert np.array_equal(spikes[:, :20], data.raster("test", 1.0, [2, 3]))
    assert not spikes[:, 20:].any()
    assert np.all(window[:, :20] == 1.0) and np.all(window[:, 20:] == 0.0)
    with pytest.raises(ConfigError, match="gap = -1.0 ms"):
        data.trial_batch("test", 1.0, [0], gap=-1.0)


def test_raster_puts_each_spike_in_its_step(data):
    times, _ = data.arrays("test", [4])
    raster = data.raster("test", 0.25, [4])[0]
    step, neuron = np.nonzero(raster)
    assert np.all(step == np.floor(times[0, neuron] / 0.25 + 1e-9))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("side", 4, "side"),
        ("side", 28.0, "side"),
        ("t_min", -1.0, "t_min"),
        ("t_max", 1.0, "t_max"),
        ("duration", 10.0, "duration"),
        ("threshold", 1.0, "threshold"),
        ("threshold", float("nan"), "threshold"),
        ("test_fraction", 0.0, "test_fraction"),
        ("test_fraction", 0.001, "test_fraction"),
        ("split_seed", -3, "split_seed"),
        ("t_max", "18", "t_max"),
    ],
)
def test_bad_config_names_the_field(field, value, match):
    cfg = dataclasses.replace(DigitsLatencyConfig(), **{field: value})
    with pytest.raises(ConfigError, match=match):
        DigitsLatency(cfg)


def test_bad_split_and_indices_are_refused(data):
    with pytest.raises(ConfigError, match="split 'validation'"):
        data.arrays("validation")
    with pytest.raises(ConfigError, match=r"test indices must be in \[0, 359\)"):
        data.arrays("test", [359])
    with pytest.raises(ConfigError, match="dt"):
        data.raster("test", 0.0)
