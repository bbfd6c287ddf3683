"""EventProp in NEST under MPI (issue 20, item 6): the gradients of a recurrent network computed with 2 MPI ranks
(NEST built with MPI, ``make mpi``) equal the reference engine's to 1e-9 relative per synapse, as with threads, and
are bit-identical to those of 1 rank x 2 threads.

Each rank writes the gradients of its local connections and the values of its local readouts to its own file; the
test merges them.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import numpy as np
import pytest
from mpi_env import ENV, MPI_PYTHON, REPO, requires_mpi
from test_eventprop_nest_forward import on_grid
from test_eventprop_nest_gradients import RTOL, max_rel_err
from test_eventprop_reference import make_net, make_trials

from nestgrad.reference.eventprop import ReadoutCrossEntropy, compile_network, evaluate

pytestmark = requires_mpi

SCRIPT = r"""
import json
import numpy as np
from test_eventprop_nest_forward import on_grid
from test_eventprop_reference import make_net, make_trials
from nestgrad.nest_engine.eventprop import build
from nestgrad.reference.eventprop import ReadoutCrossEntropy

net = on_grid(make_net("recurrent", {seed}, n_hid=6, t_ref=0.7, adapt_beta=0.3, adapt_tau=20.0))
trials = make_trials({seed}, n_trials=3)
built = build(net, trials, threads={threads}, loss=ReadoutCrossEntropy("out", mode="{mode}", window_start={window}))
nest = built.nest
nest.Simulate(built.layout.sim_time)
conns = nest.GetConnections(synapse_model="eventprop_synapse")
st = {{}}
if len(conns):
    st = {{k: np.atleast_1d(v).tolist() for k, v in conns.get(["source", "target", "gradient"]).items()}}
with open(f"{outdir}/rank_{{nest.Rank()}}.json", "w") as fh:
    json.dump({{"ids": built.nodes.tolist(), "conns": st}}, fh)
"""


def run(
    ranks: int, threads: int, seed: int, outdir: pathlib.Path, mode: str = "sum", window: float = 0.0
) -> dict[tuple[int, int], list[float]]:
    code = SCRIPT.format(seed=seed, threads=threads, outdir=str(outdir), mode=mode, window=window)
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", str(MPI_PYTHON), "-c", code]
    if ranks == 1:
        cmd = [str(MPI_PYTHON), "-c", code]
    res = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"mpirun failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    by_pair: dict[tuple[int, int], list[float]] = {}
    files = sorted(outdir.glob("rank_*.json"))
    assert len(files) == ranks
    for path in files:
        st = json.loads(path.read_text())["conns"]
        for s, t, g in zip(st.get("source", []), st.get("target", []), st.get("gradient", []), strict=True):
            by_pair.setdefault((int(s), int(t)), []).append(float(g))
    return by_pair


@pytest.mark.parametrize("mode", ["sum", "max"])
@pytest.mark.parametrize("seed", [1, 2])
def test_eventprop_nest_gradients_two_ranks(seed: int, mode: str, tmp_path: pathlib.Path) -> None:
    net = on_grid(make_net("recurrent", seed, n_hid=6, t_ref=0.7, adapt_beta=0.3, adapt_tau=20.0))
    trials = make_trials(seed, n_trials=3)
    loss = ReadoutCrossEntropy("out", mode=mode)
    ref = evaluate(net, trials, loss)
    cnet = compile_network(net)
    by_pair = run(2, 1, seed, tmp_path, mode)
    ids = np.arange(1, cnet.n + 1)  # node ids in creation order (the builder creates one node per neuron)
    got = np.array([by_pair[(int(ids[s]), int(ids[t]))].pop(0) for s, t in zip(cnet.src, cnet.tgt, strict=True)])
    got = got / len(trials)
    errs = max_rel_err(ref.grad_weights, {name: got[sl] for name, sl in cnet.proj_slices.items()})
    print(f"seed {seed} {mode}, 2 ranks: max_rel_err {errs}")
    for name, err in errs.items():
        assert err <= RTOL, f"projection {name}: max relative error {err:.3e}"


@pytest.mark.parametrize("mode", ["sum", "max"])
def test_eventprop_nest_window_gradients_two_ranks(mode: str, tmp_path: pathlib.Path) -> None:
    """The loss over a response window [15, 40] ms on 2 ranks: the readouts' window start travels with their
    constants to reverse connections on the other rank; gradients equal the reference's to 1e-9 relative."""
    net = on_grid(make_net("recurrent", 1, n_hid=6, t_ref=0.7, adapt_beta=0.3, adapt_tau=20.0))
    trials = make_trials(1, n_trials=3)
    loss = ReadoutCrossEntropy("out", mode=mode, window_start=15.0)
    ref = evaluate(net, trials, loss)
    cnet = compile_network(net)
    by_pair = run(2, 1, 1, tmp_path, mode, window=15.0)
    ids = np.arange(1, cnet.n + 1)
    got = np.array([by_pair[(int(ids[s]), int(ids[t]))].pop(0) for s, t in zip(cnet.src, cnet.tgt, strict=True)])
    got = got / len(trials)
    errs = max_rel_err(ref.grad_weights, {name: got[sl] for name, sl in cnet.proj_slices.items()})
    print(f"window {mode}, 2 ranks: max_rel_err {errs}")
    for name, err in errs.items():
        assert err <= RTOL, f"projection {name}: max relative error {err:.3e}"


def test_eventprop_nest_gradients_rank_thread_split_bit_identical(tmp_path: pathlib.Path) -> None:
    """2 ranks x 1 thread and 1 rank x 2 threads (the same number of virtual processes) give the same gradients bit
    for bit (issue 20, item 6)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    two_ranks = run(2, 1, 1, tmp_path / "a")
    two_threads = run(1, 2, 1, tmp_path / "b")
    assert two_ranks.keys() == two_threads.keys()
    for pair, grads in two_ranks.items():
        assert sorted(grads) == sorted(two_threads[pair]), pair
