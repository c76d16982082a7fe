"""The numba fast-math flags every kernel uses.

Reassociation and contraction let LLVM vectorise the inner loops. NaN and inf are still
honoured ('nnan' and 'ninf' are left out), so guards against bad controls keep working.
"""

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
