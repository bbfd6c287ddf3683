"""The V1 model's visual input: the LGN filter model (nestgrad.tasks.lgn) and Chen et al.'s five visual tasks
(nestgrad.tasks.v1). No NEST needed."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

import nestgrad.tasks.v1 as vt
from nestgrad.tasks import TaskReadouts, accuracy, accuracy_per_task
from nestgrad.tasks.lgn import (
    FIELD_SHAPE,
    LGN,
    LGN_TYPE_NAMES,
    LGN_TYPES,
    N_FULL,
    TemporalKernel,
    type_counts,
)

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
GRAY = np.zeros(FIELD_SHAPE)
WHITE = np.ones(FIELD_SHAPE)
TWO_SUBUNIT = ("sONsOFF_001", "sONtOFF_001")


@pytest.fixture(scope="module")
def lgn() -> LGN:
    # units well inside the field, so that no receptive field is cut by its edge
    return LGN.create(400, 3, extent_deg=(60.0, 40.0))


@pytest.fixture(scope="module")
def small_lgn() -> LGN:
    return LGN.create(40, 5, extent_deg=(60.0, 40.0))


@pytest.fixture
def fake_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without scikit-learn, stand-in digits (random 8 x 8 images, labels 0-9 in turn) test the task's plumbing."""
    if HAVE_SKLEARN:
        return
    rng = np.random.default_rng(0)
    images = rng.integers(0, 17, (300, 8, 8)).astype(float)
    monkeypatch.setattr(vt, "_load_digits", lambda: (images, np.arange(300) % 10))


def single(lgn: LGN) -> np.ndarray:
    return ~np.isin(lgn.type_names, TWO_SUBUNIT)


# -- LGN ---------------------------------------------------------------------------------------------------------------
def test_type_proportions_full_scale():
    assert sum(LGN_TYPES.values()) == 116 and N_FULL == 17400
    full = LGN.create(17400, 1)
    counts = np.bincount(full.type_index, minlength=14)
    assert counts.tolist() == [150 * n for n in LGN_TYPES.values()]
    assert full.n_units == 17400
    assert full.n_subunits == 17400 + 150 * (8 + 5)  # the two-subunit types have a second (OFF) subunit
    # every unit's type name matches its index; two-subunit types count as ON
    assert np.array_equal(full.type_names, np.array(LGN_TYPE_NAMES)[full.type_index])
    two = np.isin(full.type_names, TWO_SUBUNIT)
    assert np.all(full.is_on[two]) and np.all(full.sign[two] == 1)
    on_single = np.char.startswith(full.type_names.astype(str), "sON_")
    assert np.all(full.is_on == (on_single | two))
    # units per tile scaled down: largest remainder keeps the total and stays within 1 of the exact share
    for n in (1, 7, 116, 1000, 2345):
        c = type_counts(n)
        assert c.sum() == n
        assert np.all(np.abs(c - n * np.array(list(LGN_TYPES.values())) / 116) < 1)
    assert type_counts(116).tolist() == list(LGN_TYPES.values())


def test_layout_sizes_and_positions():
    lgn = LGN.create(3000, 2, center_deg=(100.0, 50.0), extent_deg=(40.0, 20.0))
    assert np.all((lgn.x_deg >= 80) & (lgn.x_deg < 120) & (lgn.y_deg >= 40) & (lgn.y_deg < 60))
    s = single(lgn)
    assert np.all((lgn.size_deg[s] >= 2) & (lgn.size_deg[s] <= 10))
    assert 4.0 < lgn.size_deg[s].mean() < 5.5  # triangular(2, 3, 10) has mean 5
    assert np.all(lgn.size_deg[lgn.type_names == "sONsOFF_001"] == 6.0)
    assert np.all(lgn.size_deg[lgn.type_names == "sONtOFF_001"] == 9.0)
    assert np.allclose(lgn.sub_sigma_deg[: lgn.n_units], lgn.size_deg / 3)
    # subunits of two-subunit units: ON and OFF, sf_sep apart, around the unit's centre
    n = lgn.n_units
    for name, sep in (("sONsOFF_001", 6.0), ("sONtOFF_001", 4.0)):
        units = np.flatnonzero(lgn.type_names == name)
        second = n + np.flatnonzero(np.isin(lgn.sub_unit[n:], units))
        assert np.array_equal(lgn.sub_unit[second], units)
        d = np.hypot(lgn.sub_x_deg[units] - lgn.sub_x_deg[second], lgn.sub_y_deg[units] - lgn.sub_y_deg[second])
        assert np.allclose(d, sep)
        assert np.all(lgn.sub_coef_hz[units] > 0) and np.all(lgn.sub_coef_hz[second] < 0)
    near = lgn.units_near(100.0, 50.0, 5.0, on=False)
    assert near.size > 0 and not lgn.is_on[near].any()
    assert np.all(np.hypot(lgn.x_deg[near] - 100, lgn.y_deg[near] - 50) <= 5)


def test_temporal_kernels():
    for kernel in {k for k in LGN.create(200, 1).kernels}:
        t = np.arange(0.0, 300.0, 0.5)
        s = kernel.step_response(t)
        assert s.max() == pytest.approx(1.0, abs=1e-3)  # a full-field step of contrast 1 peaks at 1
        assert 15.0 < t[np.argmax(s)] < 100.0  # within 100 ms of the step
        # sampled kernels sum to the step response at their end, independent of the time step
        assert kernel.sampled(1.0).sum() == pytest.approx(kernel.sampled(0.1).sum(), abs=1e-9)
    fast, slow = TemporalKernel((12.0, 30.0), 0.4), TemporalKernel((50.0, 100.0), 0.4)
    t = np.arange(0.0, 250.0, 0.5)
    assert t[np.argmax(fast.step_response(t))] < t[np.argmax(slow.step_response(t))]
    sustained, transient = TemporalKernel((30.0, 65.0), 0.4), TemporalKernel((30.0, 65.0), 0.9)
    assert sustained.step_response(250.0) > 0.5 > 0.2 > transient.step_response(250.0)  # weaker negative lobe


def test_gray_gives_spontaneous_rates(lgn: LGN):
    assert np.all((lgn.spont_hz >= 2.0) & (lgn.spont_hz <= 8.0))
    r = lgn.rates(GRAY, np.zeros(200, np.int64), 1.0)
    assert r.shape == (200, lgn.n_units)
    assert np.allclose(r, lgn.spont_hz[None, :], atol=1e-9)


def test_full_field_on_step(lgn: LGN):
    """A bright full-field step at 100 ms: ON units fire above, OFF units below their spontaneous rate."""
    fos = np.zeros(300, np.int64)
    fos[100:] = 1
    r = lgn.rates(np.stack([GRAY, WHITE]), fos, 1.0)
    assert r.min() >= 0.0
    s = single(lgn)
    on, off = s & lgn.is_on, s & ~lgn.is_on
    assert np.allclose(r[:100], lgn.spont_hz)  # nothing before the step (causal filters)
    after = r[150:200]  # 50-100 ms after the step
    assert np.all(after[:, on].mean(0) > lgn.spont_hz[on] + 15.0)
    assert 20.0 < after[:, on].mean() < 40.0
    assert np.all(r[100:200, on].max(0) < 60.0)  # peak rates in the published range
    assert np.all(after[:, off] == 0.0)  # OFF units are silenced (rectified)
    # after the step ends, OFF units respond (rebound) and ON units drop below spontaneous
    fos = np.zeros(400, np.int64)
    fos[100:250] = 1
    r = lgn.rates(np.stack([GRAY, WHITE]), fos, 1.0)
    assert r[250:350, off].max(0).mean() > lgn.spont_hz[off].mean() + 15.0
    assert np.all(r[300:350, on].mean(0) < lgn.spont_hz[on])


def test_grating_response_depends_on_phase(lgn: LGN):
    s = single(lgn)
    g0, g1 = vt.grating(0.0, 0.0, 0.05, 1.0), vt.grating(0.0, math.pi, 0.05, 1.0)
    resp0 = lgn.spatial_responses(g0)[:, 0]
    assert np.allclose(lgn.spatial_responses(g1)[:, 0], -resp0)  # linear filters: opposite phase, opposite sign
    # Gaussian receptive field: a grating of frequency f is attenuated by exp(-2 pi^2 f^2 sigma^2)
    sigma = lgn.sub_sigma_deg[: lgn.n_units]
    expected = np.cos(2 * math.pi * 0.05 * lgn.x_deg) * np.exp(-2 * math.pi**2 * 0.05**2 * sigma**2)
    assert np.max(np.abs(resp0[: lgn.n_units] - expected)[s]) < 0.03
    fos = np.zeros(200, np.int64)
    fos[50:150] = 1
    r0 = lgn.rates(np.stack([GRAY, g0]), fos, 1.0)
    r1 = lgn.rates(np.stack([GRAY, g1]), fos, 1.0)
    diff = np.abs(r0[60:150] - r1[60:150]).max(0)
    assert np.median(diff[s]) > 10.0  # Hz
    assert np.mean(diff[s] > 5.0) > 0.9


def test_rates_paths_agree_and_time_step(lgn: LGN):
    """Few frames: per-frame indicator filtering; many frames: direct filtering. Both are exact."""
    rng = np.random.default_rng(1)
    frames = rng.uniform(-1, 1, (4, *FIELD_SHAPE))
    fos = np.repeat(rng.integers(0, 4, 12), 25)
    r = lgn.rates(frames, fos, 1.0)
    direct = LGN.create(400, 3, extent_deg=(60.0, 40.0))
    direct.MAX_FRAMES_FOR_INDICATORS = 0
    assert np.allclose(direct.rates(frames, fos, 1.0), r, atol=1e-9)
    # a finer time step samples the same rate time course
    fine = lgn.rates(frames, np.repeat(fos, 10), 0.1)
    assert np.allclose(fine[9::10], r, atol=1e-6)


def test_spikes_bernoulli_and_deterministic(lgn: LGN):
    rates = np.full((20000, 10), 50.0)
    sp = LGN.spikes(rates, np.random.default_rng(0), 1.0)
    assert sp.dtype == bool and sp.shape == rates.shape
    assert sp.mean() == pytest.approx(0.05, abs=0.003)  # p = rate * dt / 1000
    assert not LGN.spikes(np.zeros((100, 3)), np.random.default_rng(0), 1.0).any()
    assert LGN.spikes(np.full((100, 3), 5000.0), np.random.default_rng(0), 1.0).all()  # p clipped to 1
    a, b = LGN.create(300, 9), LGN.create(300, 9)
    assert np.array_equal(a.x_deg, b.x_deg) and np.array_equal(a.sub_coef_hz, b.sub_coef_hz)
    assert not np.array_equal(a.x_deg, LGN.create(300, 10).x_deg)
    fos = np.r_[np.zeros(50, np.int64), np.ones(100, np.int64)]
    ra, rb = a.rates(np.stack([GRAY, WHITE]), fos, 1.0), b.rates(np.stack([GRAY, WHITE]), fos, 1.0)
    assert np.array_equal(a.spikes(ra, np.random.default_rng(4), 1.0), b.spikes(rb, np.random.default_rng(4), 1.0))


def test_lgn_validation(lgn: LGN):
    with pytest.raises(ValueError, match="n_units = 0"):
        LGN.create(0, 1)
    with pytest.raises(ValueError, match="extent_deg"):
        LGN.create(10, 1, extent_deg=(0.0, 10.0))
    with pytest.raises(ValueError, match=r"frames of shape \(100, 240\)"):
        lgn.rates(np.zeros((100, 240)), np.zeros(5, np.int64), 1.0)
    bad = GRAY.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"frames\(0, 3, 4\) = nan"):
        lgn.rates(bad, np.zeros(5, np.int64), 1.0)
    with pytest.raises(ValueError, match="frame_of_step value 2"):
        lgn.rates(np.stack([GRAY, WHITE]), np.array([0, 1, 2]), 1.0)
    with pytest.raises(ValueError, match="dt_ms = 0"):
        lgn.rates(GRAY, np.zeros(5, np.int64), 0.0)
    with pytest.raises(ValueError, match="rate nan"):
        lgn.spikes(np.full((2, 2), np.nan), np.random.default_rng(0), 1.0)
    with pytest.raises(ValueError, match="rate -1.0"):
        lgn.spikes(np.full((2, 2), -1.0), np.random.default_rng(0), 1.0)


# -- stimuli -----------------------------------------------------------------------------------------------------------
def test_stimuli():
    images = vt.smooth_images(8, 0)
    assert images.shape == (8, *FIELD_SHAPE)
    assert np.allclose(np.abs(images).max(axis=(1, 2)), 1.0) and np.allclose(images.mean(axis=(1, 2)), 0.0)
    assert np.array_equal(images, vt.smooth_images(8, 0)) and not np.array_equal(images, vt.smooth_images(8, 1))
    digit = np.zeros((8, 8))
    digit[2:6, 3:5] = 16.0
    frame = vt.digit_frame(digit, 1.0)
    assert frame.shape == FIELD_SHAPE
    assert np.all(frame[:, :60] == 0) and np.all(frame[:, 180:] == 0)  # 120 x 120 digit, gray padding
    assert frame[:, 60:180].min() == -1.0 and frame[60, 120] == pytest.approx(1.0)
    g = vt.grating(90.0, 0.0, 0.05, 0.5)
    assert np.allclose(g, g[:, :1]) and 0.49 < np.abs(g).max() <= 0.5  # varies along y only


# -- tasks -------------------------------------------------------------------------------------------------------------
WINDOWS = {  # learning window (ms from trial start) at the default timing
    "v1_orientation": (150, 200),
    "v1_digits": (150, 200),
    "v1_image_change": (500, 550),
    "v1_grating_change": (500, 550),
    "v1_evidence": (550, 600),
}


@pytest.mark.parametrize("name", list(WINDOWS))
def test_task_batches(name: str, small_lgn: LGN, fake_digits: None):
    task = vt.make_v1_task(name, vt.V1TaskConfig(), 7, small_lgn, 1.0, 200)
    assert task.n_in == small_lgn.n_units and task.trial_steps == 600
    assert task.n_out == (10 if name == "v1_digits" else 2) == vt.V1_TASKS[name].n_out
    batch = task.batch(0)
    assert batch.input_spikes.shape == (200 * 600, small_lgn.n_units) and batch.input_spikes.dtype == bool
    assert batch.target.shape == (200 * 600, task.n_out) and batch.labels.shape == (200,)
    assert 0.5 < batch.input_spikes.mean() * 1000 < 20  # Hz: LGN-like rates
    window = batch.learning_window.reshape(200, 600)
    start, stop = WINDOWS[name]
    expected = np.zeros(600)
    expected[start:stop] = 1.0
    assert np.all(window == expected)
    target = batch.target.reshape(200, 600, -1)
    assert np.all(target.sum(2) == window)  # one-hot inside the window, 0 outside
    assert np.all(target[:, start, :].argmax(1) == batch.labels)
    assert accuracy(batch.target, batch) == 1.0
    counts = np.bincount(batch.labels, minlength=task.n_out)
    if task.n_out == 2:
        assert 70 <= counts[1] <= 130  # roughly balanced
    else:
        assert counts.min() >= 8
    # deterministic per (seed, iteration)
    again = vt.make_v1_task(name, vt.V1TaskConfig(), 7, small_lgn, 1.0, 3)
    b1, b2 = again.batch(5), again.batch(5)
    assert np.array_equal(b1.input_spikes, b2.input_spikes) and np.array_equal(b1.labels, b2.labels)
    assert not np.array_equal(b1.input_spikes, again.batch(6).input_spikes)


def test_trial_contents(small_lgn: LGN):
    rng = np.random.default_rng(0)
    cfg = vt.V1TaskConfig()
    ev = vt.EvidenceTask(cfg, 0, small_lgn, 1.0, 1)
    for _ in range(50):
        tr = ev.trial(rng)
        cue_starts = np.arange(5) * 60
        sides = tr.frame_of_step[cue_starts] - 1
        assert set(sides.tolist()) <= {0, 1} and np.all(tr.frame_of_step[cue_starts + 50] == 0)
        assert tr.label == int(sides.sum() >= 3)
        assert np.all(tr.frame_of_step[550:] == 3) and np.all(tr.frame_of_step[300:550] == 0)
    assert np.all(ev.frames[1][:, :120] == 1.0) and np.all(ev.frames[1][:, 120:] == 0.0)  # left cue
    for cls in (vt.ImageChangeTask, vt.GratingChangeTask):
        task = cls(cfg, 0, small_lgn, 1.0, 1)
        for _ in range(50):
            tr = task.trial(rng)
            assert np.all(tr.frame_of_step[50:150] == 1) and np.all(tr.frame_of_step[350:450] == 2)
            assert np.all(tr.frame_of_step[np.r_[0:50, 150:350, 450:600]] == 0)
            if cls is vt.ImageChangeTask:
                assert tr.label == int(not np.array_equal(tr.frames[1], tr.frames[2]))
    ori = vt.FineOrientationTask(vt.V1TaskConfig(orientation_difference_deg=20.0), 0, small_lgn, 1.0, 1)
    for _ in range(20):
        tr = ori.trial(rng)
        g = tr.frames[1]
        # recover the orientation from the grating's gradient direction at a point where it is steep
        gy, gx = np.gradient(g)
        i = np.unravel_index(np.argmax(gx**2 + gy**2), g.shape)
        angle = math.degrees(math.atan2(gy[i], gx[i])) % 180
        assert tr.label == int(angle > 45)
    # a fixed phase: each frame is the grating of one allowed orientation with that phase; labels (the other draws)
    # are those of the random-phase task
    fixed = vt.FineOrientationTask(
        vt.V1TaskConfig(orientation_difference_deg=20.0, orientation_phase_deg=60.0), 0, small_lgn, 1.0, 1
    )
    allowed = 45.0 + np.r_[-200:0, 1:201] * 0.1
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(5):
        a, b = fixed.trial(r1), ori.trial(r2)
        assert a.label == b.label
        err = [np.abs(a.frames[1] - vt.grating(o, math.radians(60.0), 0.05, 1.0)).max() for o in allowed]
        assert min(err) < 1e-12 and int(allowed[int(np.argmin(err))] > 45) == a.label


def test_trials_and_batches_name_what_was_shown(small_lgn: LGN, fake_digits: None):
    """Each trial's ``stimulus`` rebuilds its frames and label exactly; a batch carries its trials' stimuli in order."""
    cfg = vt.V1TaskConfig()
    rng = np.random.default_rng(3)
    ori = vt.FineOrientationTask(vt.V1TaskConfig(orientation_difference_deg=20.0), 0, small_lgn, 1.0, 1)
    digits = vt.DigitsTask(cfg, 0, small_lgn, 1.0, 1)
    images = vt.ImageChangeTask(cfg, 0, small_lgn, 1.0, 1)
    gratings = vt.GratingChangeTask(cfg, 0, small_lgn, 1.0, 1)
    evidence = vt.EvidenceTask(cfg, 0, small_lgn, 1.0, 1)
    for _ in range(20):
        t = ori.trial(rng)
        s = t.stimulus
        np.testing.assert_array_equal(t.frames[1], vt.grating(s["orientation_deg"], s["phase_rad"], 0.05, 1.0))
        assert t.label == int(s["orientation_deg"] > 45)
        t = digits.trial(rng)
        np.testing.assert_array_equal(t.frames[1], vt.digit_frame(digits.images[t.stimulus["digit_index"]], 1.0))
        assert t.label == digits.labels[t.stimulus["digit_index"]]
        t = images.trial(rng)
        a, b = t.stimulus["image_a"], t.stimulus["image_b"]
        np.testing.assert_array_equal(t.frames[1:], images.images[[a, b]])
        assert t.label == int(a != b)
        t = gratings.trial(rng)
        s = t.stimulus
        for k, x in ((1, "a"), (2, "b")):
            expected = vt.grating(s[f"orientation_{x}_deg"], s[f"phase_{x}_rad"], 0.05, 1.0)
            np.testing.assert_array_equal(t.frames[k], expected)
        assert t.label == int(s["orientation_a_deg"] != s["orientation_b_deg"])
        t = evidence.trial(rng)
        assert t.stimulus["right_cues"] == int((t.frame_of_step[np.arange(5) * 60] == 2).sum())
    batch_task = vt.ImageChangeTask(cfg, 4, small_lgn, 1.0, 6)
    batch = batch_task.batch(9)
    replay = batch_task._rng(9)  # the batch draws its trials first, from the iteration's generator
    assert batch.stimuli == [batch_task.trial(replay).stimulus for _ in range(6)]
    assert [int(s["image_a"] != s["image_b"]) for s in batch.stimuli] == batch.labels.tolist()
    multi = vt.make_v1_task("v1_multi", {}, 2, small_lgn, 1.0, 10)
    assert [s["task"] for s in multi.batch(0).stimuli] == multi.trial_tasks(0).tolist()


def test_time_scale_and_resolution(small_lgn: LGN):
    task = vt.FineOrientationTask(vt.V1TaskConfig(time_scale=0.5), 0, small_lgn, 0.5, 2)
    assert task.trial_steps == 600  # 300 ms in 0.5 ms steps
    assert np.flatnonzero(task.window)[[0, -1]].tolist() == [150, 199]  # 75-100 ms
    with pytest.raises(ValueError, match="task.v1.response_ms"):
        vt.FineOrientationTask(vt.V1TaskConfig(response_ms=0.2), 0, small_lgn, 1.0, 1)


def test_multi_task(small_lgn: LGN, fake_digits: None):
    task = vt.make_v1_task("v1_multi", {}, 2, small_lgn, 1.0, 10)
    assert task.n_out == 18 == vt.MultiTask.n_out
    assert [(s.start, s.stop) for s in task.task_slices.values()] == [(0, 2), (2, 12), (12, 14), (14, 16), (16, 18)]
    assert task.trial_tasks(0).tolist() == [0, 1, 2, 3, 4] * 2
    assert task.trial_tasks(1).tolist() == [0, 1, 2, 3, 4] * 2
    batch = task.batch(0)
    assert batch.target.shape == (10 * 600, 18)
    names = list(task.task_slices)
    for k, label in enumerate(batch.labels):
        sl = task.task_slices[names[k % 5]]
        assert sl.start <= label < sl.stop
        target = batch.target[k * 600 : (k + 1) * 600]
        assert np.all(target[:, : sl.start] == 0) and np.all(target[:, sl.stop :] == 0)
    assert batch.task_readouts.names == vt.MultiTask.TASK_NAMES
    assert batch.task_readouts.readouts == ((0, 2), (2, 12), (12, 14), (14, 16), (16, 18))
    assert batch.task_readouts.of_trial.tolist() == task.trial_tasks(0).tolist()
    assert accuracy_per_task(batch.target, batch) == dict.fromkeys(names, 1.0)
    # a readout that always says "class 0 of my task" is right on the trials whose label is 0 (2 trials per task)
    fixed = np.zeros_like(batch.target)
    for k in range(10):
        fixed[k * 600 : (k + 1) * 600, task.task_slices[names[k % 5]].start] = 1.0
    zero = np.array([batch.labels[k] == task.task_slices[names[k % 5]].start for k in range(10)])
    per_task = accuracy_per_task(fixed, batch)
    assert per_task == {n: np.mean(zero[[j, j + 5]]) for j, n in enumerate(names)}
    # each trial decides among its own task's readouts: another task's readout, however large, is not its answer
    loud = batch.target.copy()
    loud[:, 17] = 100.0  # the evidence task's second readout, in every trial's window
    evidence = task.trial_tasks(0) == 4
    assert accuracy(loud, batch) == pytest.approx(1 - np.mean(evidence & (batch.labels == 16)))
    assert accuracy_per_task(loud, batch)["v1_orientation"] == 1.0
    # the argmax over all 18 readouts, which the decision is not, would score every non-evidence trial wrong
    y = (loud.reshape(10, 600, 18) * batch.learning_window.reshape(10, 600, 1)).sum(1)
    assert np.all(np.argmax(y, axis=1)[~evidence] == 17)
    # random order and padding of shorter trials
    longer = vt.make_v1_task("v1_multi", {"evidence_pause_ms": 350.0, "multi_order": "random"}, 2, small_lgn, 1.0, 8)
    assert longer.trial_steps == 700
    b = longer.batch(0)
    ids = longer.trial_tasks(0)
    assert np.array_equal(ids, longer.trial_tasks(0)) and b.input_spikes.shape == (8 * 700, small_lgn.n_units)
    w = b.learning_window.reshape(8, 700)
    assert np.all(w[ids != 4, 600:] == 0)


def test_task_readouts_refuse_what_does_not_fit():
    with pytest.raises(ValueError, match="2 names for 1 readout ranges"):
        TaskReadouts(("a", "b"), ((0, 2),), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"of_trial \[0, 2\] outside 0 ... 1"):
        TaskReadouts(("a", "b"), ((0, 2), (2, 4)), np.array([0, 2]))
    tasks = TaskReadouts(("a", "b"), ((0, 2), (2, 4)), np.array([1, 1, 0]))
    assert tasks.trials_per_task() == {"a": 1, "b": 2}


def test_config_validation(small_lgn: LGN):
    assert vt.V1TaskConfig.from_dict({"contrast": 0.5}).contrast == 0.5
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['contrst'\]"):
        vt.V1TaskConfig.from_dict({"contrst": 0.5})
    bad = {
        "contrast": 0.0,
        "time_scale": -1.0,
        "stimulus_ms": 0.0,
        "pre_delay_ms": float("nan"),
        "n_cues": 4,
        "n_images": 1,
        "p_reappear": 1.5,
        "digits_split": "validation",
        "multi_order": "sorted",
        "orientation_difference_deg": 0.0,
        "grating_change_max_deg": 120.0,
        "cue_width_deg": 200.0,
        "grating_change_random_phase": "yes",
        "orientation_phase_deg": "fixed",
        "response_start_ms": 580.0,
        "change_response_delay_ms": 260.0,
    }
    for key, value in bad.items():
        with pytest.raises(ValueError, match=f"task.v1.{key} = "):
            vt.V1TaskConfig(**{key: value})
    with pytest.raises(ValueError, match="known: v1_orientation, v1_digits"):
        vt.make_v1_task("v1_mnist", None, 0, small_lgn, 1.0, 1)
    with pytest.raises(ValueError, match="task.batch_size = 0"):
        vt.make_v1_task("v1_orientation", None, 0, small_lgn, 1.0, 0)


@pytest.mark.skipif(HAVE_SKLEARN, reason="scikit-learn is installed")
def test_digits_without_sklearn_says_how_to_install(small_lgn: LGN):
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        vt.DigitsTask(vt.V1TaskConfig(), 0, small_lgn, 1.0, 1)


@pytest.mark.skipif(not HAVE_SKLEARN, reason="needs scikit-learn")
def test_digits_real_data(small_lgn: LGN):
    train = vt.DigitsTask(vt.V1TaskConfig(), 0, small_lgn, 1.0, 1)
    test = vt.DigitsTask(vt.V1TaskConfig(digits_split="test"), 0, small_lgn, 1.0, 1)
    assert train.images.shape == (1797, 8, 8)
    assert not set(train.indices) & set(test.indices) and train.indices.size + test.indices.size == 1797
