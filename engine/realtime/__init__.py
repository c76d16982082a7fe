"""What runs on the audio thread: the host callback (`host`), the MIDI event queue and state,
the numba `kernels` and the streaming `features`. Nothing here allocates, locks or logs per block."""
