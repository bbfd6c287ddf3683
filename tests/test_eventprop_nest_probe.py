"""Probe of the EventProp message channel (docs/eventprop_nest_design.md, section 6, test 1).

EventProp's backward pass in NEST carries the adjoint in the offset field of off-grid spikes. These tests send
arbitrary doubles (negative, huge, subnormal, -0.0, inf, NaN) in that field from ``eventprop_probe_ps`` nodes through
``eventprop_synapse`` to ``eventprop_probe_ps`` nodes and check that every one arrives bit for bit, at the right
step, and that several spikes of one source within one step arrive in the order they were sent: with 1 and 2
threads, and with 2 MPI ranks (NEST built with MPI, ``make mpi``).
"""

from __future__ import annotations

import json
import math
import pathlib
import struct
import subprocess
import sys

import pytest
from mpi_env import ENV, MPI_PYTHON, REPO, requires_mpi

N_SRC, N_TGT, DELAY_STEPS = 3, 4, 7
PAYLOADS = [
    -1.5,
    1e300,
    -1e300,
    5e-324,  # smallest subnormal
    -2.2250738585072014e-309,  # negative subnormal
    -0.0,
    0.0,
    0.05,
    0.1,  # = h: outside the [0, h) of a time offset
    math.inf,
    -math.inf,
    math.nan,
    123456.789,
]

SCRIPT = r"""
import json, struct, sys
import nest
import nestgrad

outdir = {outdir!r}
N_SRC, N_TGT, DELAY_STEPS, THREADS = {n_src}, {n_tgt}, {delay}, {threads}
PAYLOADS = [float.fromhex(x) for x in {payloads}]
nest.set_verbosity("M_ERROR")
nest.ResetKernel()
nestgrad.install()
nest.SetKernelStatus({{"resolution": 0.1, "local_num_threads": THREADS}})
src = nest.Create("eventprop_probe_ps", N_SRC)
tgt = nest.Create("eventprop_probe_ps", N_TGT)
for i in range(N_SRC):
    # source i sends every payload twice: all in step 20 + i (several spikes of one source in one step), then one
    # per step from step 40 on
    steps = [20 + i] * len(PAYLOADS) + [40 + k for k in range(len(PAYLOADS))]
    src[i].set({{"emit_steps": steps, "emit_offsets": PAYLOADS + PAYLOADS[::-1]}})
for i in range(N_SRC):
    for j in range(N_TGT):
        nest.Connect(src[i], tgt[j], syn_spec={{"synapse_model": "eventprop_synapse",
                                               "delay": DELAY_STEPS * 0.1, "weight": 1000.0 * (i + 1) + j}})
nest.Simulate(10.0)
out = {{}}
for node in tgt:
    if node.local:
        st = node.get(["received_steps", "received_offsets", "received_weights"])
        out[int(node.global_id)] = {{
            "steps": [int(x) for x in st["received_steps"]],
            "bits": [struct.pack("<d", float(x)).hex() for x in st["received_offsets"]],
            "weights": [float(x) for x in st["received_weights"]],
        }}
with open(f"{outdir}/probe_{{nest.Rank()}}.json", "w") as fh:
    json.dump(out, fh)
"""


def bits(x: float) -> str:
    return struct.pack("<d", x).hex()


def run_probe(python: pathlib.Path | str, threads: int, ranks: int, outdir: pathlib.Path) -> dict[int, dict]:
    """Run the probe script; each rank writes the records of its local targets to its own file (lines written
    to one stdout by two ranks can interleave)."""
    code = SCRIPT.format(
        n_src=N_SRC,
        n_tgt=N_TGT,
        delay=DELAY_STEPS,
        threads=threads,
        payloads=repr([x.hex() for x in PAYLOADS]),
        outdir=str(outdir),
    )
    cmd = [str(python), "-c", code]
    if ranks > 1:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", *cmd]
    res = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{cmd[:6]} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    merged: dict[int, dict] = {}
    files = sorted(outdir.glob("probe_*.json"))
    assert len(files) == ranks, files
    for path in files:
        for k, v in json.loads(path.read_text()).items():
            assert int(k) not in merged, f"target {k} reported by two ranks"
            merged[int(k)] = v
    return merged


def check(received: dict[int, dict]) -> None:
    assert sorted(received) == list(range(N_SRC + 1, N_SRC + N_TGT + 1)), received.keys()
    sent = PAYLOADS + PAYLOADS[::-1]
    for j, gid in enumerate(sorted(received)):
        rec = received[gid]
        assert len(rec["steps"]) == len(rec["bits"]) == len(rec["weights"]) == N_SRC * len(sent)
        for i in range(N_SRC):
            w = 1000.0 * (i + 1) + j
            idx = [k for k, x in enumerate(rec["weights"]) if x == w]
            steps = [20 + i] * len(PAYLOADS) + [40 + k for k in range(len(PAYLOADS))]
            # each source's spikes arrive in the order sent, also within one step, with every bit of the offset
            assert [rec["bits"][k] for k in idx] == [bits(x) for x in sent], (gid, i)
            assert [rec["steps"][k] for k in idx] == [s + DELAY_STEPS for s in steps], (gid, i)


@pytest.mark.parametrize("threads", [1, 2])
def test_eventprop_offset_payload_probe_threads(threads: int, tmp_path: pathlib.Path) -> None:
    check(run_probe(sys.executable, threads, 1, tmp_path))


@requires_mpi
@pytest.mark.parametrize(("ranks", "threads"), [(2, 1), (2, 2)])
def test_eventprop_offset_payload_probe_mpi(ranks: int, threads: int, tmp_path: pathlib.Path) -> None:
    check(run_probe(MPI_PYTHON, threads, ranks, tmp_path))
