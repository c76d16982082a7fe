"""The real-time core: the host callback, the plugin contract, kernels, features and I/O.

The floor at the bottom of timbrel. It imports nothing of timbrel's above it:

- `realtime/`: what runs on the audio thread (the host callback, events, MIDI state, the
  numba `kernels/` and the streaming `features/`);
- `io/`: audio, MIDI and audio files;
- `offline/`: the NumPy reference the kernels are tested against;
- `plugin_api`: the contract a plugin fulfils, which the host calls.

Importing it has no side effects; an entry point calls `numba_cache.configure_numba_cache()`.
"""
