"""Reference engine: NumPy e-prop (as NEST computes it) and BPTT of the same discrete-time networks."""
