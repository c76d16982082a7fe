"""Kernels (numba) that move a block between the stereo bus and a foreign plugin's port
buffers (LV2): audio in and out, control values, and the atom buffers' headers.

Port buffers are made once, `[max_block]` each; a block of `n` samples uses their first `n`.
"""

from __future__ import annotations

import numba


@numba.njit(nogil=True, cache=True, _nrt=False)
def split_bus(bus, left, right, to_mono):
    """Copy the bus `[2, n]` into the input ports `left` and `right` (float32 `[>= n]`); with
    `to_mono`, write the channels' mean into `left` only."""
    n = bus.shape[1]
    if to_mono:
        for i in range(n):
            left[i] = 0.5 * (bus[0, i] + bus[1, i])
    else:
        for i in range(n):
            left[i] = bus[0, i]
            right[i] = bus[1, i]


@numba.njit(nogil=True, cache=True, _nrt=False)
def join_bus(bus, left, right):
    """Copy the output ports `left` and `right` (float32 `[>= n]`) back into the bus `[2, n]`."""
    for i in range(bus.shape[1]):
        bus[0, i] = left[i]
        bus[1, i] = right[i]


@numba.njit(nogil=True, cache=True, _nrt=False)
def controls_from_values(ports, values, choice_offsets, choice_values):
    """Write parameter `values` (float64 `[p]`) into control port values `ports` (float32 `[p]`).
    A switch (`choice_offsets[i] >= 0`) holds an index; its port gets
    `choice_values[choice_offsets[i] + index]`."""
    for i in range(values.shape[0]):
        offset = choice_offsets[i]
        if offset < 0:
            ports[i] = values[i]
        else:
            ports[i] = choice_values[offset + int(values[i] + 0.5)]


@numba.njit(nogil=True, cache=True, _nrt=False)
def reset_atom_buffers(inputs, outputs, sequence_urid, chunk_urid, capacity_bytes):
    """Before a run: every atom input `inputs[k]` (uint32 words) becomes an empty
    `atom:Sequence`; every output `outputs[k]` an `atom:Chunk` offering `capacity_bytes` less
    its header, as LV2 asks of hosts."""
    for k in range(inputs.shape[0]):
        inputs[k, 0] = 8
        inputs[k, 1] = sequence_urid
        inputs[k, 2] = 0
        inputs[k, 3] = 0
    for k in range(outputs.shape[0]):
        outputs[k, 0] = capacity_bytes - 8
        outputs[k, 1] = chunk_urid
