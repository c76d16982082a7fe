"""Training side: torch models, training, ONNX export. Imports torch; never imported by the playback path."""
