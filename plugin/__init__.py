"""Plugins: the plugin API, ONNX-backed instruments and effects, and preset loading."""
