"""The browser control surface of `timbrel play`: presets, parameters, keyboard and meters.

`timbrel.ui.server.serve(session)` starts it; see that module for how it keeps off the
audio thread's way.
"""
