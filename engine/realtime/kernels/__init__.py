"""Streaming numba kernels that run on the audio thread. Nothing here allocates per block."""
