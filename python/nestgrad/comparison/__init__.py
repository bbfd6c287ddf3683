"""NEST against the reference engine: the glue that runs one network in both and measures the difference.

``nest_runs`` makes an exchange-format network (:class:`nestgrad.reference.spec.NetworkSpec`) from a configuration
and runs it in NEST; ``bsshslm_nest`` does the same for NEST's original-formulation models; ``compare`` reports per
projection how far NEST's weight updates are from the reference engine's (``nestgrad compare``). The reference
engine itself (:mod:`nestgrad.reference`) is pure NumPy and imports none of this.
"""
