"""Published numbers of the Billeh et al. (2020) mouse V1 model, as the V1 builder uses them.

Every table names its source; docs/v1_model.md lists them with the fallbacks where a Billeh value was not available
(docs/v1_data_sources.md has the research notes with repositories and commits). Class order is that of Chen et al.
(2022), ``neuron_pop_id_to_name``.
"""

from __future__ import annotations

import numpy as np

# 17 cell classes of the core (r < 400 um): name, layer, excitatory, cells in the core. Core counts: sums of the
# Billeh build file's per-model counts (v1_node_models.json, inner disk), total 51,978 (Chen et al.'s model size).
CLASSES: tuple[str, ...] = (
    "i1Htr3a",
    "e23",
    "i23Pvalb",
    "i23Sst",
    "i23Htr3a",
    "e4",
    "i4Pvalb",
    "i4Sst",
    "i4Htr3a",
    "e5",
    "i5Pvalb",
    "i5Sst",
    "i5Htr3a",
    "e6",
    "i6Pvalb",
    "i6Sst",
    "i6Htr3a",
)
CORE_COUNTS = np.array(
    [999, 12689, 640, 464, 1107, 10254, 963, 553, 270, 7569, 613, 555, 117, 12882, 1052, 1059, 192], dtype=np.int64
)
N_FULL = int(CORE_COUNTS.sum())  # 51,978
CORE_RADIUS_UM = 400.0
EXCITATORY = np.array([c.startswith("e") for c in CLASSES])
LAYER = np.array([{"1": "L1", "2": "L2/3", "4": "L4", "5": "L5", "6": "L6"}[c[1]] for c in CLASSES])
# depth ranges (um below the pia) of each layer, Billeh build file `depth_range`
DEPTH_RANGE_UM = {
    "L1": (50.0, 100.0),
    "L2/3": (100.0, 310.0),
    "L4": (310.0, 430.0),
    "L5": (430.0, 650.0),
    "L6": (650.0, 850.0),
}

# Receptor ports (glif_psc receptor types) by (source E/I, target E/I) and their synaptic time constants: the BMTK
# example network's e2e/i2e/e2i/i2i.json (../shared/data/bmtk_examples) and BMTK's glif_utils syn_tau.
RECEPTOR = {("e", "e"): 1, ("i", "e"): 2, ("e", "i"): 3, ("i", "i"): 4}
TAU_SYN_MS = (5.5, 8.5, 2.8, 5.8)

# Recurrent weight per synapse (pA) before nsyns x direction rule, rows = target class, columns = source class:
# kaeldai/v1_network_builder glif_props/v1_v1_edge_types.csv `syn_weight`, the most numerous GLIF type of each target
# class (e5: e5Rbp4). 0 = no connections of that pair in the model.
SYN_WEIGHT_PA = np.array(
    [
        # i1H    e23   i23P   i23S   i23H    e4   i4P   i4S    i4H    e5   i5P   i5S   i5H    e6   i6P    i6S   i6H
        [-1.77, 0, -0.379, -0.481, 0, 0, 0, -0.399, 0, 1.41, 0, -0.317, 0, 0, 0, 0, 0],  # i1Htr3a
        [-0.770, 1.82, -0.697, -0.450, -0.407, 13.1, -0.813, -0.436, -0.421, 7.91, 0, -0.363, 0, 0, -0.118, 0, 0],
        [-0.939, 10.6, -1.33, -0.979, -0.352, 4.93, -1.33, -0.979, -0.352, 4.43, -0.998, 0, 0, 0, 0, 0, 0],
        [-1.29, 7.08, -0.954, -0.341, -0.727, 2.84, -0.954, -0.341, -0.727, 2.14, 0, -0.886, 0, 0, 0, 0, 0],
        [-0.887, 5.40, -0.466, -0.591, -0.421, 1.88, -0.466, -0.591, -0.421, 1.88, 0, 0, 0, 0, 0, 0, 0],
        [-0.396, 3.72, -0.528, -0.283, -0.273, 5.44, -0.604, -0.273, -0.273, 4.15, 0, -0.264, -0.273, 0, -0.0764, 0, 0],
        [0, 5.64, -1.52, -1.12, -0.403, 5.24, -1.52, -1.12, -0.403, 5.08, -2.11, -1.01, -0.403, 0, 0, 0, 0],
        [0, 4.58, -1.54, -0.550, -1.17, 3.39, -1.54, -0.550, -1.17, 3.45, -1.54, -1.03, -1.21, 0, 0, 0, 0],
        [0, 1.83, -0.456, -0.578, -0.411, 1.03, -0.456, -0.578, -0.411, 1.83, -0.456, -0.578, -0.411, 0, 0, 0, 0],
        [
            -0.738,
            15.1,
            -0.352,
            -0.387,
            0,
            32.1,
            -1.28,
            -0.492,
            0,
            16.8,
            -1.42,
            -0.475,
            -0.492,
            4.69,
            -0.142,
            -0.475,
            -0.492,
        ],
        [0, 4.68, -1.55, 0, 0, 4.43, -1.84, -0.881, -0.352, 4.26, -2.33, -0.783, -0.352, 8.87, -2.33, -0.783, -0.352],
        [0, 1.39, 0, 0, 0, 1.36, -0.606, -0.404, -0.476, 1.36, -0.592, -0.577, -0.476, 1.36, -0.592, -0.577, -0.476],
        [0, 0, 0, 0, 0, 2.70, -0.671, -0.851, -0.605, 3.88, -0.671, -0.851, -0.605, 3.88, -0.671, -0.851, -0.605],
        [-0.494, 0, 0, 0, 0, 98.1, 0, 0, 0, 13.6, -0.953, -0.318, -0.329, 32.0, -0.0953, -0.318, -0.329],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 6.21, -1.63, -0.548, -0.247, 8.49, -1.63, -0.548, -0.247],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 2.50, -1.09, -1.06, -0.875, 4.00, -1.09, -1.06, -0.875],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 4.32, -0.745, -0.945, -0.672, 6.90, -0.745, -0.945, -0.672],
    ]
)

# Connection probability scale A_literature, rows = source class, columns = target class. Billeh's own table
# (v1_conn_props.json) is not public in a form we could find: these are the successor model's values
# (AllenInstitute/biorealistic-v1-model base_props/v1_conn_props_new.json; L5 IT/ET entries averaged), used where
# Billeh's weight table has the pair; pairs the successor sets to 0 but Billeh connects get the median of their
# E/I pair type (FALLBACK_A below).
_A_SUCC_SOURCE_ORDER = (
    "i1Htr3a", "e23", "i23Htr3a", "i23Pvalb", "i23Sst", "e4", "i4Htr3a", "i4Pvalb", "i4Sst",
    "e5", "i5Htr3a", "i5Pvalb", "i5Sst", "e6", "i6Htr3a", "i6Pvalb", "i6Sst",
)  # fmt: skip
_A_SUCC = np.array(
    [
        # i1H   e23  i23H  i23P  i23S   e4  i4H  i4P  i4S  e5     i5H  i5P  i5S   e6   i6H  i6P    i6S
        [0.656, 0.356, 0.464, 0.093, 0.068, 0.148, 0, 0, 0, 0.148, 0, 0, 0, 0.148, 0, 0, 0],  # i1H
        [0, 0.11, 0.38, 0.79, 0.76, 0.12, 0.083, 0.61, 0.40, 0.0415, 0, 0, 0.10, 0, 0, 0, 0],  # e23
        [0, 0.11, 0.05, 0.04, 0.49, 0, 0.25, 0, 0.44, 0, 0.27, 0.11, 0, 0, 0, 0, 0],  # i23H
        [0.024, 0.65, 0, 0.79, 0.28, 0.40, 0.05, 0.42, 0.05, 0.24, 0, 0.56, 0, 0, 0, 0, 0],  # i23P
        [0.279, 0.42, 0.92, 0.44, 0.17, 0.06, 0.05, 0.66, 0, 0.021, 0, 0.55, 0, 0, 0, 0, 0],  # i23S
        [0, 0.17, 0.05, 0.53, 0.09, 0.22, 0, 0.36, 0.10, 0.104, 0.30, 0.69, 0.08, 0.032, 0, 0, 0],  # e4
        [0, 0.25, 0, 0.05, 0.05, 0, 0.13, 0.04, 0.50, 0, 0.23, 0.18, 0.39, 0, 0, 0, 0],  # i4H
        [0, 0.70, 0.27, 0.53, 0.16, 0.52, 0.28, 0.97, 0.14, 0.29, 0, 0.41, 0, 0, 0, 0.613, 0],  # i4P
        [0.241, 0.61, 0.56, 0.05, 0.18, 0.54, 0.82, 0.67, 0.04, 0.026, 0.26, 0.03, 0.12, 0, 0, 0, 0],  # i4S
        [
            0.017,
            0.0105,
            0.05,
            0.095,
            0.05,
            0.007,
            0.035,
            0.05,
            0.05,
            0.0775,
            0.045,
            0.20,
            0.245,
            0.047,
            0.03,
            0.03,
            0.065,
        ],
        [0, 0, 0, 0, 0, 0.03, 0, 0, 0.48, 0, 0.15, 0.02, 0.19, 0.19, 0.13, 0, 0.26],  # i5H
        [0, 0.50, 0, 0.45, 0, 0.466, 0.19, 0.66, 0.03, 0.405, 0.10, 0.50, 0.14, 0.03, 0, 0.27, 0.11],  # i5P
        [0.203, 0.29, 0.34, 0, 0.19, 0.35, 0.66, 0.63, 0.11, 0.325, 0.33, 0.29, 0.10, 0.03, 0, 0.12, 0.07],  # i5S
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0.012, 0, 0.01, 0.01, 0.01, 0, 0.43, 0.31],  # e6
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0.03, 0, 0, 0, 0, 0, 0.14, 0.19],  # i6H
        [0, 0.10, 0, 0.556, 0, 0.10, 0, 0.556, 0, 0.10, 0.25, 0.16, 0.06, 0.60, 0.06, 0.75, 0.06],  # i6P
        [0, 0, 0.486, 0, 0, 0, 0, 0, 0, 0.065, 0, 0.22, 0.04, 0.15, 0.71, 0.34, 0.16],  # i6S
    ]
)
# the successor's Gaussian widths (um) by E/I pair type; R0 = 75 um for all (Billeh's rule)
SIGMA_UM = {("e", "e"): 127.0, ("e", "i"): 99.84, ("i", "e"): 96.6, ("i", "i"): 126.77}
R0_UM = 75.0
# like-to-like orientation factor B_ratio (e -> e only): 0.5 for targets in L2/3, L4, L6; 0.8 for L5
B_RATIO_EE = {"L2/3": 0.5, "L4": 0.5, "L5": 0.8, "L6": 0.5}
NSYN_RANGE = (3, 8)  # synapses per connected pair: numpy randint(3, 8), as Billeh's builder draws them
# width (deg) of the weight's dependence on the difference of preferred orientations (Billeh's DirectionRule)
DIRECTION_SIGMA_DEG = {("e", "e"): 30.0, ("e", "i"): 90.0, ("i", "e"): 90.0, ("i", "i"): 50.0}

# Delays (ms) by source and target group (kaeldai/v1_network_builder v1_v1_edge_types.csv `delay`).
_DELAY_TARGET_GROUPS = ("e23", "e4", "e5", "e6", "Pvalb", "other_i")
_DELAY_MS = {
    "e23": (1.6, 1.6, 1.8, 1.0, 1.2, 1.5),
    "e4": (2.3, 1.3, 1.5, 1.9, 1.2, 1.5),
    "e5": (3.0, 2.5, 1.5, 1.8, 1.2, 1.5),
    "e6": (1.0, 1.0, 3.5, 1.8, 1.2, 1.5),
    "Pvalb": (0.9, 0.9, 0.9, 0.9, 1.6, 1.2),
    "other_i": (1.5, 1.5, 1.5, 1.5, 1.5, 1.5),
    "i1Htr3a": (3.8, 3.8, 3.8, 3.8, 3.8, 3.8),
}

# LGN -> V1 per target class (kaeldai/v1_network_builder node_props/lgn_params.json and lgn_v1_edge_types.csv):
# probability that a cell receives LGN input, synapses per LGN unit (N_syn), weight per synapse (pA; 0 for Sst/Htr3a
# in L2/3-L6), ON/OFF subfield width (deg, mean of the published range) and centre distance (deg).
LGN_PROBABILITY = dict(
    i1Htr3a=0.588, e23=0.789, i23Pvalb=0.824, e4=1.0, i4Pvalb=1.0, i4Sst=0.333, i4Htr3a=0.444, e5=1.0,
    i5Pvalb=1.0, e6=0.778, i6Pvalb=0.818,
)  # fmt: skip
LGN_NSYN = dict(
    i1Htr3a=10, e23=15, i23Pvalb=15, e4=80, i4Pvalb=75, i4Sst=25, i4Htr3a=20, e5=15, i5Pvalb=20, e6=15, i6Pvalb=10
)
LGN_WEIGHT_PA = dict(
    i1Htr3a=5.8, e23=1.20, i23Pvalb=3.9, e4=0.51, i4Pvalb=1.79, i4Sst=0.0, i4Htr3a=0.0, e5=0.88, i5Pvalb=3.5,
    e6=0.76, i6Pvalb=5.05,
)  # fmt: skip
LGN_SUBFIELD_WIDTH_DEG = dict(
    i1Htr3a=9.75, e23=8.5, i23Pvalb=11.5, e4=8.5, i4Pvalb=11.5, i4Sst=9.75, i4Htr3a=9.75, e5=14.0, i5Pvalb=11.5,
    e6=10.0, i6Pvalb=11.5,
)  # fmt: skip
LGN_CENTER_DISTANCE_DEG = dict(
    i1Htr3a=8.0, e23=5.0, i23Pvalb=8.0, e4=5.0, i4Pvalb=8.0, i4Sst=8.0, i4Htr3a=8.0, e5=10.0, i5Pvalb=8.0, e6=3.5,
    i6Pvalb=8.0,
)  # fmt: skip
LGN_DELAY_MS = 1.7
# cortex -> visual field: 70 deg per mm of azimuth (x), 40 deg per mm of elevation (z), centred on the field's middle
DEG_PER_UM = (0.07, 0.04)

# GLIF3 fits (Allen Cell Types, converted to NEST units as BMTK's glif_utils does). Exact files: the BMTK example
# network (../shared/data/bmtk_examples/point_components/cell_models); others: BMTK's dpointnet_v1 example configs
# (same specimen ids). Per class, the fits of Billeh's node types of that class that we have, with Billeh's
# proportions; classes without any fit of their own borrow the fit named in CLASS_FITS (documented in docs/v1_model.md).
GLIF_FITS: dict[int, dict[str, object]] = {
    318808427: dict(V_th=-40.8824438029048, g=3.93819351064843, E_L=-76.1691640218099, C_m=68.14035162092856,
                    t_ref=2.4, asc_decay=[0.003, 0.1], asc_amps=[-13.00889622, -200.00774016]),
    480124551: dict(V_th=-37.57837016608795, g=6.846284605100222, E_L=-73.30062357584633, C_m=52.353697808027725,
                    t_ref=3.2, asc_decay=[0.003, 0.1], asc_amps=[-10.17435274, -119.53883788]),
    485836906: dict(V_th=-49.468, g=8.0880, E_L=-79.476, C_m=112.743, t_ref=3.6, asc_decay=[0.003, 0.3],
                    asc_amps=[-9.885, -686.263]),
    478958894: dict(V_th=-44.23152364988978, g=9.195230009748064, E_L=-70.45950889587401, C_m=81.21058405283176,
                    t_ref=1.5, asc_decay=[0.003, 0.3], asc_amps=[-4.08182729, -291.97668209]),
    487667205: dict(V_th=-45.793386052222445, g=7.5964352092785585, E_L=-72.08961296081546, C_m=64.02349624649017,
                    t_ref=1.4, asc_decay=[0.003, 0.3], asc_amps=[-3.28747057, 63.80635645]),
    475585413: dict(V_th=-40.209, g=4.0775, E_L=-65.502, C_m=37.111, t_ref=3.5, asc_decay=[0.003, 0.03],
                    asc_amps=[-4.524, -50.324]),
    341442651: dict(V_th=-56.323, g=9.4912, E_L=-82.351, C_m=70.951, t_ref=1.2, asc_decay=[0.003, 0.1],
                    asc_amps=[-0.612, -53.719]),
    471819401: dict(V_th=-42.311, g=5.8843, E_L=-77.505, C_m=99.963, t_ref=3.3, asc_decay=[0.003, 0.03],
                    asc_amps=[-3.289, -100.446]),
    482690728: dict(V_th=-47.389, g=3.4321, E_L=-70.010, C_m=52.325, t_ref=1.9, asc_decay=[0.003, 0.1],
                    asc_amps=[-1.274, -30.347]),
}  # fmt: skip
# class -> [(fit id, Billeh node count of that type)]; "borrowed" marks fits of another class's type
CLASS_FITS: dict[str, list[tuple[int, int]]] = {
    "i1Htr3a": [(475585413, 4241)],
    "e23": [(480124551, 1)],  # borrowed: e4Rorb (Billeh's e23 type 487661754 not available)
    "i23Pvalb": [(341442651, 1285)],
    "i23Sst": [(482690728, 1)],  # borrowed: i5Sst
    "i23Htr3a": [(475585413, 1)],  # borrowed: i1Htr3a
    "e4": [(318808427, 1008), (480124551, 1288), (485836906, 4070)],
    "i4Pvalb": [(478958894, 4262), (487667205, 199)],
    "i4Sst": [(482690728, 1)],  # borrowed: i5Sst
    "i4Htr3a": [(475585413, 1)],  # borrowed: i1Htr3a
    "e5": [(471819401, 1)],  # borrowed: e6Ntsr1
    "i5Pvalb": [(478958894, 1)],  # borrowed: i4Pvalb
    "i5Sst": [(482690728, 1486)],
    "i5Htr3a": [(475585413, 1)],  # borrowed: i1Htr3a
    "e6": [(471819401, 45497)],
    "i6Pvalb": [(478958894, 1)],  # borrowed: i4Pvalb
    "i6Sst": [(482690728, 1)],  # borrowed: i5Sst
    "i6Htr3a": [(475585413, 1)],  # borrowed: i1Htr3a
}
BORROWED_FITS = {c for c, fits in CLASS_FITS.items() if fits[0][1] == 1}


def ei(cls: str) -> str:
    return "e" if cls.startswith("e") else "i"


def connection_scale() -> np.ndarray:
    """A_literature [source, target] in CLASSES order, with the fallback for pairs Billeh connects."""
    order = [_A_SUCC_SOURCE_ORDER.index(c) for c in CLASSES]
    a = _A_SUCC[np.ix_(order, order)]
    connected = (SYN_WEIGHT_PA != 0).T  # [source, target]
    fallback = fallback_a(a, connected)
    return np.where(connected, np.where(a > 0, a, fallback), 0.0)


def fallback_a(a: np.ndarray, connected: np.ndarray) -> np.ndarray:
    """Median of the non-zero A of the same E/I pair type, for every [source, target]."""
    kinds = np.array([[ei(s) + ei(t) for t in CLASSES] for s in CLASSES])
    out = np.zeros_like(a)
    for kind in ("ee", "ei", "ie", "ii"):
        sel = kinds == kind
        values = a[sel & connected & (a > 0)]
        out[sel] = np.median(values) if values.size else 0.0
    return out


def delay_ms(source: str, target: str) -> float:
    if source == "i1Htr3a":
        group = "i1Htr3a"
    elif source.startswith("e"):
        group = source
    else:
        group = "Pvalb" if source.endswith("Pvalb") else "other_i"
    col = _DELAY_TARGET_GROUPS.index(target) if target.startswith("e") else 4 if target.endswith("Pvalb") else 5
    return _DELAY_MS[group][col]
