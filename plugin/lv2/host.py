"""An installed LV2 plugin as a timbrel effect.

    effect = create_effect("lv2:http://gareus.org/oss/lv2/fil4#stereo", {"g0": 3.0})

`prepare` (never the audio thread) instantiates the plugin with timbrel's features, makes
every port buffer, connects every port once and activates it; a mono plugin runs as two
instances, one per channel. `process` (the audio thread) writes the parameters into the
control ports, copies the bus into the input ports, runs the plugin through its own
function pointer (ctypes releases the GIL for the call), hands it its worker's answers,
and copies the outputs back: no heap call, no lock, no I/O.

A plugin that crashes (a segfault) takes the whole process with it: it runs in timbrel's
own address space, and Python cannot catch that.
"""

from __future__ import annotations

import ctypes
import math
import threading

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Effect
from timbrel.engine.realtime.kernels.plugin_ports import (
    controls_from_values,
    join_bus,
    reset_atom_buffers,
    split_bus,
)
from timbrel.plugin.lv2.description import ATOM_BUFFER_BYTES, Description
from timbrel.plugin.lv2.features import FeatureSet, urids
from timbrel.plugin.lv2.lilv import Instance
from timbrel.plugin.lv2.worker import INTERFACE as WORKER_INTERFACE
from timbrel.plugin.lv2.worker import MessageRing, Worker

ATOM_SEQUENCE = "http://lv2plug.in/ns/ext/atom#Sequence"
ATOM_CHUNK = "http://lv2plug.in/ns/ext/atom#Chunk"


class LV2Fault(TimbrelError):
    """An LV2 plugin went wrong while playing (its worker failed); the chain disables it."""


class LV2Effect(Effect):
    """Base of the classes `timbrel.plugin.lv2.catalog.effect_class` makes, one per plugin:
    each sets `description`, `name` (the short name) and `parameters` (one per control input,
    its id the port's symbol)."""

    description: Description

    def __init__(self) -> None:
        super().__init__()
        self._instances: list[Instance] = []
        self._workers: list[Worker] = []
        self._feature_sets: list[FeatureSet] = []
        self._runs: tuple = ()
        self._shape = (0, 0)
        self._events = MessageRing(ATOM_BUFFER_BYTES)
        self._send_lock = threading.Lock()

    @property
    def uri(self) -> str:
        """The plugin's URI."""
        return self.description.uri

    @property
    def effect_type(self) -> str:
        """"lv2:" and the URI: what a preset stores."""
        return "lv2:" + self.description.uri

    @property
    def latency_samples(self) -> int:
        """What the plugin's latency port says (0 when it has none or is not prepared)."""
        port = self.description.latency_port
        if port < 0 or not self._instances:
            return 0
        value = float(self._outputs[0, self._output_slot[port]])
        return max(0, round(value)) if math.isfinite(value) else 0

    def outputs(self) -> dict[str, float]:
        """The plugin's control outputs (meters, gain reduction…) after the last block, by
        symbol, from the first instance."""
        if not self._instances:
            return {}
        return {symbol: float(self._outputs[0, k]) for k, (_, symbol) in enumerate(self.description.control_outputs)}

    def send_atom(self, type_uri: str, body: bytes) -> bool:
        """Queue one atom event (`type_uri`, `body` bytes) for the plugin's first atom input; it
        arrives at the start of the next block, at frame 0 (each instance of a mono plugin gets
        it). Any control thread may call this; False when the plugin has no atom input or the
        queue is full."""
        if not self.description.atom_inputs or not self._instances:
            return False
        message = ctypes.create_string_buffer(urids().map(type_uri).to_bytes(4, "little") + bytes(body))
        with self._send_lock:
            return self._events.write(ctypes.addressof(message), len(message) - 1)

    @property
    def worker_jobs(self) -> int:
        """Worker jobs the plugin's instances have had done since `prepare`."""
        return sum(w.jobs for w in self._workers)

    def prepare(self, sample_rate: int, max_block: int) -> None:
        """Instantiate, connect and activate for blocks of up to `max_block` samples at
        `sample_rate` Hz; prepared again at the same size, the plugin is only reset
        (deactivated and activated). One-line TimbrelError when the plugin refuses."""
        super().prepare(sample_rate, max_block)
        if self._instances and self._shape == (self.sample_rate, self.max_block):
            self._reactivate()
            return
        self.close()
        d = self.description
        if d.fault:
            raise TimbrelError(f"LV2 plugin '{d.uri}' {d.fault}")
        count = 2 if d.dual_mono else 1
        n = self.max_block
        self._inputs = np.zeros(max(1, len(d.parameters)), dtype=np.float32)
        self._choice_offsets = np.array(d.choice_offsets or (-1,), dtype=np.int64)
        self._choice_values = np.array(d.choice_values or (0.0,), dtype=np.float64)
        self._fixed = np.array([self.sample_rate if math.isnan(v) else v for _, v in d.fixed_inputs] or [0.0],
                               dtype=np.float32)
        self._outputs = np.zeros((count, max(1, len(d.control_outputs))), dtype=np.float32)
        self._output_slot = {port: k for k, (port, _) in enumerate(d.control_outputs)}
        self._audio_in = np.zeros((count, len(d.audio_inputs), n), dtype=np.float32)
        self._audio_out = np.zeros((count, len(d.audio_outputs), n), dtype=np.float32)
        self._cv_in = np.zeros(n, dtype=np.float32)
        self._cv_out = np.zeros((count, len(d.cv_outputs), n), dtype=np.float32)
        self._atom_bytes = d.atom_buffer_bytes
        words = self._atom_bytes // 4
        self._atoms_in = np.zeros((count * len(d.atom_inputs), words), dtype=np.uint32)
        self._atoms_out = np.zeros((count * len(d.atom_outputs), words), dtype=np.uint32)
        self._atoms_in_address = self._atoms_in.ctypes.data
        self._sequence_urid, self._chunk_urid = urids().map(ATOM_SEQUENCE), urids().map(ATOM_CHUNK)
        self._route(d)
        try:
            for k in range(count):
                self._instantiate(d, k)
        except Exception:
            self.close()
            raise
        self._shape = (self.sample_rate, self.max_block)
        self._warm_up()

    def _route(self, d: Description) -> None:
        """Which port buffers the bus's left and right channels go into and come from."""
        ins, outs = self._audio_in, self._audio_out
        slot_in = [d.audio_inputs.index(p) for p in d.main_inputs]
        slot_out = [d.audio_outputs.index(p) for p in d.main_outputs]
        self._to_mono = len(slot_in) == 1 and not d.dual_mono
        if d.dual_mono:
            self._left_in, self._right_in = ins[0, slot_in[0]], ins[1, slot_in[0]]
            self._left_out, self._right_out = outs[0, slot_out[0]], outs[1, slot_out[0]]
        else:
            self._left_in, self._right_in = ins[0, slot_in[0]], ins[0, slot_in[-1]]
            self._left_out, self._right_out = outs[0, slot_out[0]], outs[0, slot_out[-1]]

    def _instantiate(self, d: Description, k: int) -> None:
        worker = Worker() if d.worker else None
        features = FeatureSet(self.sample_rate, self.max_block, worker.schedule if worker else None)
        with d.plugin.world.lock:
            instance = d.plugin.instantiate(self.sample_rate, features.array)
        if instance is None:
            raise TimbrelError(f"LV2 plugin '{d.uri}' failed to instantiate at {self.sample_rate} Hz")
        self._instances.append(instance)
        self._feature_sets.append(features)
        self._connect(d, instance, k)
        if worker is not None:
            interface = instance.extension_data(WORKER_INTERFACE)
            if interface:
                worker.attach(interface, instance.handle, d.name)
                self._workers.append(worker)
            else:
                worker = None
        instance.activate()
        self._runs += ((instance.run, instance.handle, worker),)

    def _connect(self, d: Description, instance: Instance, k: int) -> None:
        connect, handle = instance.connect_port, instance.handle
        for i, port in enumerate(d.parameter_ports):
            connect(handle, port, self._inputs.ctypes.data + 4 * i)
        for i, (port, _) in enumerate(d.fixed_inputs):
            connect(handle, port, self._fixed.ctypes.data + 4 * i)
        for i, (port, _) in enumerate(d.control_outputs):
            connect(handle, port, self._outputs[k].ctypes.data + 4 * i)
        for i, port in enumerate(d.audio_inputs):
            connect(handle, port, self._audio_in[k, i].ctypes.data)
        for i, port in enumerate(d.audio_outputs):
            connect(handle, port, self._audio_out[k, i].ctypes.data)
        for port in d.cv_inputs:
            connect(handle, port, self._cv_in.ctypes.data)
        for i, port in enumerate(d.cv_outputs):
            connect(handle, port, self._cv_out[k, i].ctypes.data)
        for i, port in enumerate(d.atom_inputs):
            connect(handle, port, self._atoms_in[k * len(d.atom_inputs) + i].ctypes.data)
        for i, port in enumerate(d.atom_outputs):
            connect(handle, port, self._atoms_out[k * len(d.atom_outputs) + i].ctypes.data)
        for port in d.unconnected:
            connect(handle, port, None)

    def _warm_up(self) -> None:
        """Compile the port kernels for both bus layouts, and run one silent block so the
        latency port holds its value; then reset the plugin."""
        bus = np.zeros((2, 2 * self.max_block), dtype=np.float32)
        for view in (bus[:, : self.max_block], bus[:, ::2]):
            self.process(view[0], view, np.zeros(0, dtype=np.int32))
        self._reactivate()

    def _reactivate(self) -> None:
        for instance in self._instances:
            instance.deactivate()
        for worker in self._workers:
            worker.fault = ""
        for instance in self._instances:
            instance.activate()

    def _deliver_atoms(self) -> None:
        """Audio thread: move queued events into each instance's first atom input sequence, as
        many as fit; the rest wait for the next block."""
        ring, inputs, per = self._events, self._atoms_in, len(self.description.atom_inputs)
        used = 0
        size = ring.peek()
        while size >= 0:
            need = 16 + ((size - 4 + 7) & ~7)
            if 16 + used + need > self._atom_bytes:
                return
            at = ring.address()
            for k in range(0, inputs.shape[0], per):
                sequence = inputs[k]
                word = 4 + used // 4
                sequence[word] = 0
                sequence[word + 1] = 0
                sequence[word + 2] = size - 4
                ctypes.memmove(self._atoms_in_address + k * self._atom_bytes + 4 * (word + 3), at, size)
                sequence[0] = 8 + used + need
            used += need
            ring.pop(size)
            size = ring.peek()

    def reset(self) -> None:
        """LV2 has no real-time reset; `prepare` resets the plugin (deactivates and activates it).
        Called on the audio thread (a bypassed slot gone silent), this leaves the plugin as it is."""

    def close(self) -> None:
        """Stop the workers and free the instances (off the audio thread); `prepare` makes new ones."""
        for worker in self._workers:
            worker.stop()
        if self._instances:
            with self.description.plugin.world.lock:
                for instance in self._instances:
                    instance.free()
        self._instances, self._workers, self._feature_sets, self._runs = [], [], [], ()
        self._shape = (0, 0)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        """Run the plugin on the bus `out` `[2, n]` in place (n <= max_block)."""
        n = out.shape[1]
        for _, _, worker in self._runs:
            if worker is not None and worker.fault:
                raise LV2Fault(worker.fault)
        self.params.advance(n / self.sample_rate)
        controls_from_values(self._inputs, self.params.values, self._choice_offsets, self._choice_values)
        split_bus(out, self._left_in, self._right_in, self._to_mono)
        reset_atom_buffers(self._atoms_in, self._atoms_out, self._sequence_urid, self._chunk_urid, self._atom_bytes)
        if self._events.peek() >= 0:
            self._deliver_atoms()
        for run, handle, worker in self._runs:
            run(handle, n)
            if worker is not None:
                worker.deliver()
        join_bus(out, self._left_out, self._right_out)

