"""The Yin-Yang data set against its published definition (Kriener et al. 2022): geometry, class balance, splits,
determinism, spike-time coding, and errors for bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from nestgrad.errors import ConfigError
from nestgrad.tasks import yinyang as yy


def test_classes_follow_the_geometry_of_the_definition():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 1, size=(400_000, 2))
    xy = xy[np.hypot(xy[:, 0] - 0.5, xy[:, 1] - 0.5) <= 0.5]
    cls = yy.classify(xy[:, 0], xy[:, 1])
    # areas: dots 2 pi r_small^2, yin and yang each half of the rest (of the big circle, pi r_big^2)
    frac = np.bincount(cls, minlength=3) / cls.size
    dots = 2 * 0.1**2 / 0.5**2
    n = cls.size
    for got, want in zip(frac, [(1 - dots) / 2, (1 - dots) / 2, dots], strict=True):
        assert abs(got - want) < 5 * np.sqrt(want * (1 - want) / n)  # 5 standard errors of a binomial fraction
    # yang is yin turned by half a turn about the centre; the dots map onto each other
    swap = np.array([1, 0, 2])
    turned = yy.classify(1 - xy[:, 0], 1 - xy[:, 1])
    d = np.minimum(np.hypot(xy[:, 0] - 0.25, xy[:, 1] - 0.5), np.hypot(xy[:, 0] - 0.75, xy[:, 1] - 0.5))
    off_boundary = (np.abs(d - 0.1) > 1e-9) & (np.abs(d - 0.25) > 1e-9) & (np.abs(xy[:, 1] - 0.5) > 1e-9)
    assert np.array_equal(turned[off_boundary], swap[cls[off_boundary]])
    # fixed points of the definition
    assert yy.classify(np.array([0.75, 0.25, 0.5, 0.5]), np.array([0.5, 0.5, 0.9, 0.1])).tolist() == [2, 2, 0, 1]


def test_default_splits_sizes_balance_and_inputs():
    for name, size in yy.SPLIT_SIZES.items():
        data = yy.split(name)
        assert len(data) == size and data.inputs.shape == (size, 4)
        counts = np.bincount(data.labels, minlength=3)
        assert counts.max() - counts.min() <= 1
        x, y = data.points.T
        assert np.all(np.hypot(x - 0.5, y - 0.5) <= 0.5)
        assert np.array_equal(yy.classify(x, y), data.labels)
        assert np.allclose(data.inputs[:, 2:], 1 - data.inputs[:, :2], rtol=0, atol=0)
    a, b = yy.split("train"), yy.split("test")
    assert not np.any(np.all(a.inputs[:1000] == b.inputs, axis=1))


def test_deterministic_in_the_seed():
    a, b, c = yy.generate(300, 7), yy.generate(300, 7), yy.generate(300, 8)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.inputs, c.inputs)


def test_spike_time_coding():
    data = yy.generate(50, 1)
    t = yy.spike_times(data, tau_syn=5.0)
    assert t.shape == (50, 5)
    assert np.allclose(t[:, :4], 5.0 * (0.15 + data.inputs * 1.85), rtol=1e-15)
    assert np.all(t[:, 4] == 4.5)
    assert yy.spike_times(data, t_bias=None).shape == (50, 4)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: yy.generate(0, 1), "size = 0"),
        (lambda: yy.generate(True, 1), "size = True"),
        (lambda: yy.generate(10, 1, r_small=0.3), "r_small = 0.3"),
        (lambda: yy.split("val"), "'val'"),
        (lambda: yy.spike_times(yy.generate(3, 1), tau_syn=float("nan")), "tau_syn = nan"),
        (lambda: yy.spike_times(yy.generate(3, 1), t_early=2.0, t_late=1.0), "t_early = 2.0"),
        (lambda: yy.spike_times(yy.generate(3, 1), t_bias=-1.0), "t_bias = -1.0"),
    ],
)
def test_bad_arguments_are_named(call, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        call()
