"""The DVS-style event-stream task ``dvs_glyphs`` (issue 24, item 3): the pixel model, the scene, the classes, the
split, the configuration's refusals, the TrialBatch and a short training run through the Trainer."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

from nestgrad.config import ExperimentConfig, TaskConfig
from nestgrad.errors import ConfigError
from nestgrad.tasks import EVALUATION_FIRST_BATCH, accuracy, make_task
from nestgrad.tasks.dvs_glyphs import (
    DvsGlyphs,
    DvsGlyphsConfig,
    DvsGlyphsTask,
    TrialParams,
    glyph_centres,
    noise_events,
    pixel_events,
    render,
)

QUIET = dict(noise_rate_hz=0.0, threshold_mismatch=0.0)


@pytest.fixture(scope="module")
def data() -> DvsGlyphs:
    return DvsGlyphs()


def _square(side: int = 8) -> np.ndarray:
    """A bright square glyph with a 1 px dark border (sharp edges on all sides)."""
    img = np.zeros((side, side))
    img[1:-1, 1:-1] = 1.0
    return img


# -- the plain generator: the fast one must give exactly its events -----------------------------------------------
def _plain_pixel_events(log_i: np.ndarray, frame_ms: float, c: np.ndarray, refractory_ms: float):
    """The pixel model as first written (before the generator was made faster): every pixel of every trial, frame by
    frame, its slope computed per frame."""
    n_frames, n = log_i.shape
    ref, blocked_until, pending = log_i[0].copy(), np.full(n, -np.inf), np.zeros(n, bool)
    out_t, out_i, out_p = [], [], []
    for k in range(n_frames - 1):
        t0, t1 = k * frame_ms, (k + 1) * frame_ms
        l0, l1 = log_i[k], log_i[k + 1]
        slope = (l1 - l0) / frame_ms
        start = np.full(n, t0)
        r = np.flatnonzero(pending & (blocked_until <= t1))
        ref[r] = l0[r] + slope[r] * (blocked_until[r] - t0)
        start[r] = blocked_until[r]
        pending[r] = False
        cand = np.flatnonzero(~pending & ((l1 >= ref + c) | (l1 <= ref - c)))
        while cand.size:
            up = l1[cand] >= ref[cand] + c[cand]
            level = np.where(up, ref[cand] + c[cand], ref[cand] - c[cand])
            tc = np.clip(t0 + (level - l0[cand]) / slope[cand], start[cand], t1)
            out_t.append(tc)
            out_i.append(cand)
            out_p.append(up.astype(np.int8))
            ref[cand], start[cand] = level, tc
            if refractory_ms > 0:
                release = tc + refractory_ms
                inside = release <= t1
                ri = cand[inside]
                ref[ri] = l0[ri] + slope[ri] * (release[inside] - t0)
                start[ri] = release[inside]
                blocked_until[cand[~inside]] = release[~inside]
                pending[cand[~inside]] = True
                cand = ri
            cand = cand[(l1[cand] >= ref[cand] + c[cand]) | (l1[cand] <= ref[cand] - c[cand])]
    return np.concatenate(out_t), np.concatenate(out_i), np.concatenate(out_p)


def _plain_events(data: DvsGlyphs, trials: list[TrialParams], rng: np.random.Generator):
    """(t, x, y, p, trial) of ``trials`` as first written: each trial rendered with one einsum, every pixel's log
    intensity, all trials' pixels through the pixel model together, then the noise, sorted by trial and time."""
    c = data.config
    n_frames, n_pix, gs = int(round(c.duration_ms / c.frame_ms)) + 1, c.side * c.side, c.glyph_side
    times = np.arange(n_frames) * c.frame_ms
    frames = []
    for tr in trials:
        centres = glyph_centres(tr, c, times)
        u = np.arange(c.side)[None, None, :] - centres.T[:, :, None] + gs / 2.0  # [(x, y), n, side]
        w = np.maximum(0.0, 1.0 - np.abs(u[..., None] - np.arange(gs)))
        glyph = np.einsum("tag,gh,tbh->tab", w[1], tr.image, w[0], optimize=True)
        frames.append(c.background + (1.0 - c.background) * glyph)
    log_i = np.log(np.stack(frames)).reshape(len(trials), n_frames, n_pix).transpose(1, 0, 2).reshape(n_frames, -1)
    t, idx, p = _plain_pixel_events(log_i, c.frame_ms, np.tile(data.threshold, len(trials)), c.refractory_ms)
    nt, nidx, np_ = noise_events(rng, len(trials) * n_pix, c.duration_ms, c.noise_rate_hz)
    t, idx, p = np.concatenate([t, nt]), np.concatenate([idx, nidx]), np.concatenate([p, np_])
    trial, pix = np.divmod(idx, n_pix)
    order = np.lexsort((t, trial))
    y, x = np.divmod(pix[order], c.side)
    return t[order], x, y, p[order], trial[order]


@pytest.mark.parametrize(
    "params",
    [
        {},
        dict(motions=["up_right", "down_left", "cw", "left", "up"], refractory_ms=0.0, noise_rate_hz=2.0),
        dict(speed_min=0.1, speed_max=0.2, frame_ms=0.5, threshold_mismatch=0.1, refractory_ms=3.0, background=0.3),
    ],
)
def test_generator_gives_exactly_the_events_of_the_plain_one(params):
    """Every event (time to the last bit, pixel, polarity, trial, order) of the fast generator (only the pixels the
    glyph changes, two matrix products instead of the einsum, the next ON/OFF levels kept per pixel) equals the
    plain generator's, for trials of every kind of motion, with and without refractory time."""
    data = DvsGlyphs(DvsGlyphsConfig.from_dict(params))
    rng = np.random.default_rng(11)
    trials, _ = data.draw_trials(rng, "train", 7)
    plain = _plain_events(data, trials, np.random.default_rng(12))
    fast = data.events(trials, np.random.default_rng(12))
    assert fast.size > 7 * 1000
    for got, want in zip((fast.t, fast.x, fast.y, fast.p, fast.trial), plain, strict=True):
        assert np.array_equal(got, want)


# -- the DVS pixel --------------------------------------------------------------------------------------------------
def test_ramp_gives_one_event_per_threshold_at_the_interpolated_time():
    """ln I rising linearly by 1.0 over 10 ms (frames every 1 ms) crosses C = 0.2 five times, at 2, 4, 6, 8, 10 ms;
    falling gives OFF events at the same times."""
    frames = np.linspace(0.0, 1.0, 11)[:, None]
    t, i, p = pixel_events(frames, 1.0, 0.2, 0.0)
    np.testing.assert_allclose(t, [2.0, 4.0, 6.0, 8.0, 10.0], atol=1e-9)
    assert np.all(p == 1) and np.all(i == 0)
    t, _, p = pixel_events(-frames, 1.0, 0.2, 0.0)
    np.testing.assert_allclose(t, [2.0, 4.0, 6.0, 8.0, 10.0], atol=1e-9)
    assert np.all(p == 0)
    # sub-frame timing: a jump of 0.5 within one frame crosses 0.2 and 0.4 at 0.4 and 0.8 of the frame
    t, _, _ = pixel_events(np.array([[0.0], [0.5]]), 1.0, 0.2, 0.0)
    np.testing.assert_allclose(t, [0.4, 0.8], atol=1e-9)


def test_refractory_time_drops_crossings_and_resets_the_reference():
    """With a 3 ms refractory time, a ramp of 0.1 per ms and C = 0.2: an event at 2 ms, release at 5 ms (reference
    0.5), next event at 7 ms, release at 10 ms: events 5 ms apart instead of 2."""
    frames = np.arange(13)[:, None] * 0.1
    t, _, _ = pixel_events(frames, 1.0, 0.2, 3.0)
    np.testing.assert_allclose(t, [2.0, 7.0, 12.0], atol=1e-9)


def test_static_image_emits_nothing_without_noise(data):
    c = DvsGlyphsConfig(**QUIET)
    frames = render(data.glyphs[0], np.tile([[16.0, 16.0]], (50, 1)), c.side, c.background)
    t, _, _ = pixel_events(np.log(frames.reshape(50, -1)), 1.0, 0.2, 1.0)
    assert t.size == 0
    # a trial's blank period (glyph at rest) is silent too; with noise it is not
    quiet = DvsGlyphs(c)
    trials, _ = quiet.draw_trials(np.random.default_rng(0), "train", 6)
    ev = quiet.events(trials, np.random.default_rng(1))
    assert ev.size > 0 and not np.any(ev.t < c.blank_ms)
    noisy = data.events(trials, np.random.default_rng(1))
    n_blank = np.sum(noisy.t < c.blank_ms)
    expected = 6 * c.side**2 * data.config.noise_rate_hz * c.blank_ms / 1000.0  # Poisson mean
    assert abs(n_blank - expected) < 5 * math.sqrt(expected)


def test_moving_bright_glyph_emits_on_at_its_leading_and_off_at_its_trailing_side():
    c = DvsGlyphsConfig(**QUIET, refractory_ms=0.0)
    gen = DvsGlyphs(c)
    for motion, axis, sign in (("right", 0, 1), ("left", 0, -1), ("down", 1, 1), ("up", 1, -1)):
        trial = TrialParams(_square(), motion, 0.05, (0.0, 0.0))
        ev = gen.events([trial], np.random.default_rng(0))
        centre = glyph_centres(trial, c, ev.t)[:, axis]
        pos = (ev.x if axis == 0 else ev.y) + 0.5
        ahead = sign * (pos - centre) > 0
        assert ev.size > 100
        assert np.mean(ahead[ev.p == 1]) == 1.0, motion  # ON: ink arrives on the leading side
        assert np.mean(ahead[ev.p == 0]) == 0.0, motion  # OFF: ink leaves on the trailing side
        assert abs(np.mean(ev.p) - 0.5) < 0.05  # as much ink arrives as leaves


def test_event_count_scales_with_speed():
    """Each pixel an edge passes emits about ln(contrast) / C events, so the count grows with the distance
    travelled: twice the speed over the same time, twice the events (refractory time 0, no noise)."""
    c = DvsGlyphsConfig(**QUIET, refractory_ms=0.0, motion_ms=200.0, blank_ms=0.0, readout_ms=50.0)
    gen = DvsGlyphs(c)
    counts = [gen.events([TrialParams(_square(), "right", v, (0.0, 0.0))], np.random.default_rng(0)).size
              for v in (0.02, 0.04, 0.08)]  # fmt: skip
    assert counts[1] / counts[0] == pytest.approx(2.0, rel=0.1)
    assert counts[2] / counts[1] == pytest.approx(2.0, rel=0.1)
    # per pixel and edge: ln(1 / background) / C threshold crossings
    per_edge = math.log(1.0 / c.background) / c.contrast_threshold
    edge_pixels = 2 * 6 * (0.04 * 200.0)  # two vertical edges of 6 px sweep 8 px each
    assert counts[1] == pytest.approx(per_edge * edge_pixels, rel=0.25)


def test_default_event_statistics_as_documented(data):
    """docs/dvs_glyphs.md: ~6,600 events per 500 ms trial (5-95 % of trials 4,400-8,700; thin glyphs moving slowly
    down to ~2,000), half of them ON, a mean rate of ~6.5 Hz per channel of the 2,048."""
    trials, _ = data.draw_trials(np.random.default_rng(5), "train", 12)
    ev = data.events(trials, np.random.default_rng(6))
    per_trial = np.bincount(ev.trial, minlength=12)
    assert per_trial.min() > 1500 and per_trial.max() < 12000
    assert 5000 < per_trial.mean() < 8500
    assert abs(np.mean(ev.p) - 0.5) < 0.05
    # each channel spikes at most once per 1 ms step: the 1 ms refractory time keeps nearly every event
    assert data.raster(ev, 1.0).sum() >= 0.999 * ev.size


# -- classes, seeds, split ------------------------------------------------------------------------------------------
def _task(batch_size: int = 12, seed: int = 1, **params) -> DvsGlyphsTask:
    return DvsGlyphsTask(TaskConfig(name="dvs_glyphs", batch_size=batch_size, params=params), seed)


def test_batches_are_deterministic_per_seed():
    a, b, other = _task(6), _task(6), _task(6, seed=2)
    x, y = a.batch(3), b.batch(3)
    np.testing.assert_array_equal(x.input_spikes, y.input_spikes)
    np.testing.assert_array_equal(x.labels, y.labels)
    assert not np.array_equal(x.input_spikes, a.batch(4).input_spikes)
    assert not np.array_equal(x.input_spikes, other.batch(3).input_spikes)


def test_classes_are_balanced(data):
    rng = np.random.default_rng(0)
    for n in (12, 7, 30):
        _, labels = data.draw_trials(rng, "train", n)
        counts = np.bincount(labels, minlength=6)
        assert counts.max() - counts.min() <= (0 if n % 6 == 0 else 1), (n, counts)
    two = DvsGlyphs(DvsGlyphsConfig(motions=("left", "right"), glyph_groups=((0, 1, 2), (7, 8))))
    assert two.config.n_classes == 4 and two.class_names() == ["left/012", "right/012", "left/78", "right/78"]
    trials, labels = two.draw_trials(rng, "train", 40)
    assert np.all(np.bincount(labels) == 10)
    for trial, label in zip(trials, labels, strict=True):
        group = two.config.glyph_groups[label // 2]
        assert two.digits[trial.glyph] in group and trial.motion == ("left", "right")[label % 2]


def test_train_and_test_glyphs_are_disjoint(data):
    train, test = data.indices["train"], data.indices["test"]
    assert np.intersect1d(train, test).size == 0
    assert train.size + test.size == data.digits.size == 1797
    rng = np.random.default_rng(0)
    for split, own in (("train", train), ("test", test)):
        trials, _ = data.draw_trials(rng, split, 60)
        assert np.all(np.isin([t.glyph for t in trials], own))
    task = _task(6)
    # training batches draw from the training glyphs, evaluation batches from the test glyphs
    for k, own in ((0, train), (EVALUATION_FIRST_BATCH + 2, test)):
        trials, _ = task.data.draw_trials(task._rng(k), "test" if k >= EVALUATION_FIRST_BATCH else "train", 6)
        assert np.all(np.isin([t.glyph for t in trials], own))


def test_pooling_merges_blocks_of_the_full_sensor():
    full = DvsGlyphs(DvsGlyphsConfig())
    pooled = DvsGlyphs(DvsGlyphsConfig(pool=2))
    trials, _ = full.draw_trials(np.random.default_rng(3), "train", 2)
    ev = full.events(trials, np.random.default_rng(4))
    a = full.raster(ev, 1.0).reshape(2, 500, 2, 16, 2, 16, 2).any(axis=(4, 6)).reshape(2, 500, 512)
    np.testing.assert_array_equal(pooled.raster(ev, 1.0), a)
    assert pooled.n_in == 512 and full.n_in == 2048


# -- configuration ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, field",
    [
        ({"pool": 3}, "pool"),
        ({"side": 2}, "side"),
        ({"glyph_side": 40}, "glyph_side"),
        ({"motions": ["right", "spin"]}, "motions"),
        ({"motions": ["right", "right"]}, "motions"),
        ({"motions": ["right"]}, "motions x glyph_groups"),
        ({"glyph_groups": [[1, 2], [2, 3]]}, "glyph_groups"),
        ({"glyph_groups": [[1, 12]]}, "glyph_groups"),
        ({"readout_ms": 500.0}, "readout_ms"),
        ({"motion_ms": 990.0}, "blank_ms + motion_ms"),
        ({"motion_ms": 450.5}, "motion_ms"),
        ({"speed_min": 0.0}, "speed_min"),
        ({"speed_max": 0.01}, "speed_max"),
        ({"background": 1.0}, "background"),
        ({"contrast_threshold": -0.2}, "contrast_threshold"),
        ({"refractory_ms": -1.0}, "refractory_ms"),
        ({"noise_rate_hz": float("nan")}, "noise_rate_hz"),
        ({"threshold_mismatch": 0.9}, "threshold_mismatch"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"side": 32.0}, "side"),
        ({"colour": 1}, "unknown key"),
    ],
)
def test_bad_values_are_refused_by_name(params, field):
    field = re.escape(field)
    with pytest.raises(ConfigError, match=f"task\\.params.*{field}|{field}.*task\\.params"):
        ExperimentConfig.from_dict({"task": {"name": "dvs_glyphs", "params": params}})


def test_params_of_other_tasks_and_bad_resolution_are_refused():
    cfg = ExperimentConfig.from_dict({"task": {"name": "sine", "params": {"pool": 2}}})
    with pytest.raises(ConfigError, match="task.params is used by the task 'dvs_glyphs' only"):
        make_task(cfg.task, 1)
    cfg = ExperimentConfig.from_dict({"task": {"name": "dvs_glyphs", "resolution": 0.3}})
    with pytest.raises(ConfigError, match=r"blank_ms \+ motion_ms = 500.0 ms is not a whole number of time steps"):
        make_task(cfg.task, 1)
    with pytest.raises(ConfigError, match="microcircuit"):
        ExperimentConfig.from_dict({"network": {"architecture": "microcircuit"}, "task": {"name": "dvs_glyphs"}})


# -- TrialBatch ------------------------------------------------------------------------------------------------------
def test_trial_batch_has_the_readout_window_at_the_end():
    task = _task(6, pool=2, blank_ms=20.0, motion_ms=180.0, readout_ms=40.0)
    assert (task.n_in, task.n_out, task.trial_steps) == (512, 6, 200)
    batch = task.batch(0)
    assert batch.input_spikes.shape == (1200, 512) and batch.input_spikes.dtype == bool
    assert batch.target.shape == (1200, 6) and batch.n_trials == 6
    window = batch.learning_window.reshape(6, 200)
    assert np.all(window[:, :160] == 0) and np.all(window[:, 160:] == 1)
    target = batch.target.reshape(6, 200, 6)
    np.testing.assert_array_equal(target[:, 160:, :].argmax(2), np.repeat(batch.labels[:, None], 40, 1))
    assert np.all(target.sum(2) == window)
    assert sorted(batch.labels) == list(range(6))
    # the inputs are the generator's raster of the same trials
    rng = task._rng(0)
    trials, labels = task.data.draw_trials(rng, "train", 6)
    ev = task.data.events(trials, rng)
    np.testing.assert_array_equal(batch.input_spikes.reshape(6, 200, 512), task.data.raster(ev, 1.0))
    # a readout equal to the target classifies every trial
    assert accuracy(batch.target, batch) == 1.0


# -- through the Trainer ---------------------------------------------------------------------------------------------
def test_short_training_run_through_the_trainer(tmp_path):
    from nestgrad.training import Trainer

    cfg = ExperimentConfig.from_dict(
        {
            "network": {"neuron_model": "eprop_iaf_adapt", "n_rec": 20, "seed": 1},
            "task": {
                "name": "dvs_glyphs",
                "batch_size": 4,
                "params": {
                    "side": 16,
                    "glyph_side": 8,
                    "pool": 2,
                    "motions": ["right", "left"],
                    "blank_ms": 10.0,
                    "motion_ms": 90.0,
                    "readout_ms": 30.0,
                    "speed_min": 0.08,
                    "speed_max": 0.12,
                    "radius_px": 4.0,
                },
            },  # fmt: skip
            "optimizer": {"type": "adam", "eta": 5e-3, "batch_size": 400},
            "training": {"iterations": 3, "checkpoint_every": 3, "plot": False},
        }
    )
    trainer = Trainer(cfg, tmp_path, verbose=False)
    assert (trainer.n_in, trainer.n_out) == (128, 2)
    history = trainer.run()
    assert len(history) == 3
    assert all(math.isfinite(h["loss"]) and 0.0 <= h["accuracy"] <= 1.0 and h["rate_hz"] > 0 for h in history)
    assert (tmp_path / "checkpoint.npz").stat().st_size > 0
    result = trainer.evaluate(n_batches=1)
    assert result["trials"] == 4 and 0.0 <= result["accuracy"] <= 1.0
    weights = trainer.state.weights
    initial = trainer.initial_state().weights
    assert not np.allclose(weights["in_rec"], initial["in_rec"])  # e-prop changed the input weights


def test_shipped_config_loads():
    from importlib import resources

    path = resources.files("nestgrad") / "configs" / "dvs_glyphs_eprop.toml"
    cfg = ExperimentConfig.from_toml(str(path))
    section = cfg.section("task")
    assert cfg.task.name == "dvs_glyphs" and section.n_in == 512 and section.n_classes == 6
    assert cfg.optimizer.batch_size == cfg.task.batch_size * int(section.duration_ms / cfg.task.resolution)
    assert dataclasses.asdict(section)["motions"] == ("right", "left", "up", "down", "cw", "ccw")
