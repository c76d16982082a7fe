"""The one exception type users see: a one-line message naming the file and the fault."""


class TimbrelError(Exception):
    """A fault in user input (a file, a device, an argument), reported without a traceback."""
