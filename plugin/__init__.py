"""Plugins: the ONNX-backed instruments (MIDI and transfer), the effects chain and the built-in
effects, and third-party plugin discovery. They implement `timbrel.engine.plugin_api`."""
