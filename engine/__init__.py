"""timbrel's engine: DSP kernels, features, the streaming engine, and audio and MIDI I/O."""

from engine._cache import configure_numba_cache

configure_numba_cache()
