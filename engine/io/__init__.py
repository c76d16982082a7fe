"""The I/O layer: audio streams (PortAudio), MIDI input (rtmidi) and audio files. Runs off the
audio thread except for the callbacks it hands the host."""
