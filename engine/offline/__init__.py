"""Offline NumPy reference implementations of the synthesis processors (see docs/DSP.md)."""
