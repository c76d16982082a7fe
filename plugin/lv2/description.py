"""What an installed LV2 plugin is, in timbrel's terms: its control ports as `Parameter`s
(range, unit, scale, switches from enumerations and toggles, groups), its audio ports as a
stereo effect, the ports it only needs connected, its latency port, and whether timbrel can
host it at all (and if not, why, in one line).

Read from lilv once per plugin, off the audio thread.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from timbrel.engine.plugin_api import Parameter
from timbrel.plugin.lv2 import features as lv2_features
from timbrel.plugin.lv2.lilv import Plugin, Port
from timbrel.plugin.lv2.worker import INTERFACE as WORKER_INTERFACE

LV2 = "http://lv2plug.in/ns/lv2core#"
ATOM_PORT = "http://lv2plug.in/ns/ext/atom#AtomPort"
CV_PORT = LV2 + "CVPort"
PORT_PROPS = "http://lv2plug.in/ns/ext/port-props#"
UNITS = "http://lv2plug.in/ns/extensions/units#"
PORT_GROUP = "http://lv2plug.in/ns/ext/port-groups#group"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"

UNIT_SYMBOLS = {
    "db": "dB", "hz": "Hz", "khz": "kHz", "mhz": "MHz", "ms": "ms", "s": "s", "min": "min", "pc": "%",
    "bpm": "BPM", "cent": "cent", "semitone12TET": "st", "degree": "°", "oct": "oct", "midiNote": "note",
    "bar": "bars", "beat": "beats", "frame": "frames", "m": "m", "cm": "cm", "mm": "mm", "km": "km",
    "inch": "in", "mile": "mi", "coef": "",
}
"""LV2's standard units (`units:` fragment -> symbol), for hosts without the units bundle installed."""

RESIZE_PORT_MINIMUM = "http://lv2plug.in/ns/ext/resize-port#minimumSize"
ATOM_BUFFER_BYTES = 1 << 14
"""Capacity of each atom port's buffer, unless a port asks for more."""

_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LV2Unavailable(Exception):
    """Marker mixed into the errors for a plugin that is not installed or cannot be hosted,
    so a preset can leave it out and say so instead of failing."""


@dataclass
class Description:
    """One plugin as timbrel hosts it. Port indices are the plugin's own.

    `parameters[i]` drives control input `parameter_ports[i]`; a switch's value is an index
    into `choice_values[choice_offsets[i]:]` (-1 for a plain number). `fixed_inputs` are
    control inputs timbrel sets itself (free-wheeling: 0; NaN stands for the sample rate). `main_inputs`/`main_outputs` are
    the audio ports the stereo bus goes through (one or two each); other audio inputs
    (side chains) hear silence. `fault` is "" for a plugin timbrel can host, else why not.
    """

    uri: str
    name: str
    class_label: str
    plugin: Plugin | None = field(default=None, repr=False)
    parameters: tuple[Parameter, ...] = ()
    parameter_ports: tuple[int, ...] = ()
    choice_offsets: tuple[int, ...] = ()
    choice_values: tuple[float, ...] = ()
    fixed_inputs: tuple[tuple[int, float], ...] = ()
    control_outputs: tuple[tuple[int, str], ...] = ()
    latency_port: int = -1
    audio_inputs: tuple[int, ...] = ()
    audio_outputs: tuple[int, ...] = ()
    main_inputs: tuple[int, ...] = ()
    main_outputs: tuple[int, ...] = ()
    atom_inputs: tuple[int, ...] = ()
    atom_outputs: tuple[int, ...] = ()
    cv_inputs: tuple[int, ...] = ()
    cv_outputs: tuple[int, ...] = ()
    unconnected: tuple[int, ...] = ()
    required_features: tuple[str, ...] = ()
    worker: bool = False
    atom_buffer_bytes: int = ATOM_BUFFER_BYTES
    """Each atom port's buffer: the default, or the most any port asks for (`rsz:minimumSize`)."""
    fault: str = ""

    @property
    def dual_mono(self) -> bool:
        """A mono plugin runs as two instances, one per channel."""
        return len(self.main_inputs) == 1 and len(self.main_outputs) == 1

    @property
    def ok(self) -> bool:
        """Whether timbrel can host the plugin."""
        return not self.fault


def describe(plugin: Plugin, provided: tuple[str, ...] | None = None) -> Description:
    """The `Description` of `plugin`; never raises (an unusable plugin gets `fault`).
    `provided`: the features the host can give (default `features.ACCEPTED`)."""
    d = Description(uri=plugin.uri, name=plugin.name, class_label=plugin.class_label, plugin=plugin)
    try:
        _read(plugin, d, lv2_features.ACCEPTED if provided is None else provided)
    except Exception as err:  # a malformed description must not stop the listing of the others
        d.fault = f"its description cannot be read ({type(err).__name__}: {err})"
    return d


def _read(plugin: Plugin, d: Description, provided: tuple[str, ...]) -> None:
    d.required_features = tuple(plugin.required_features())
    missing = [uri for uri in d.required_features if uri not in provided]
    d.worker = plugin.has_extension_data(WORKER_INTERFACE)
    minimum, maximum, default = plugin.port_ranges()
    parameters, ports, offsets, values, fixed, outputs = [], [], [], [], [], []
    audio_in, audio_out, side_in, side_out = [], [], [], []
    atom_in, atom_out, cv_in, cv_out, unconnected, unsupported = [], [], [], [], [], []
    for index in range(plugin.num_ports):
        port = plugin.port(index)
        is_input = port.is_a(LV2 + "InputPort")
        if port.is_a(LV2 + "ControlPort"):
            designation, _ = port.get(LV2 + "designation")
            if not is_input:
                outputs.append((index, port.symbol))
                if designation == LV2 + "latency" or port.has_property(LV2 + "reportsLatency"):
                    d.latency_port = index
            elif designation in (LV2 + "freeWheeling",):
                fixed.append((index, 0.0))
            elif designation == "http://lv2plug.in/ns/ext/parameters#sampleRate":
                fixed.append((index, math.nan))
            else:
                parameter, choices = _parameter(port, minimum[index], maximum[index], default[index])
                parameters.append(parameter)
                ports.append(index)
                offsets.append(len(values) if choices else -1)
                values.extend(choices)
        elif port.is_a(LV2 + "AudioPort"):
            side = port.has_property(LV2 + "isSideChain")
            (side_in if side else audio_in).append(index) if is_input else (side_out if side else audio_out).append(index)
        elif port.is_a(ATOM_PORT):
            (atom_in if is_input else atom_out).append(index)
            wanted, _ = port.get(RESIZE_PORT_MINIMUM)
            if wanted:
                d.atom_buffer_bytes = max(d.atom_buffer_bytes, (int(float(wanted)) + 7) & ~7)
        elif port.is_a(CV_PORT):
            (cv_in if is_input else cv_out).append(index)
        elif port.has_property(LV2 + "connectionOptional"):
            unconnected.append(index)
        else:
            unsupported.append(port.symbol or str(index))
    d.parameters, d.parameter_ports = tuple(parameters), tuple(ports)
    d.choice_offsets, d.choice_values = tuple(offsets), tuple(values)
    d.fixed_inputs, d.control_outputs = tuple(fixed), tuple(outputs)
    d.main_inputs, d.main_outputs = tuple(audio_in[:2]), tuple(audio_out[:2])
    d.audio_inputs, d.audio_outputs = tuple(audio_in + side_in), tuple(audio_out + side_out)
    d.atom_inputs, d.atom_outputs = tuple(atom_in), tuple(atom_out)
    d.cv_inputs, d.cv_outputs = tuple(cv_in), tuple(cv_out)
    d.unconnected = tuple(unconnected)
    if missing:
        d.fault = f"needs features timbrel does not provide: {', '.join(missing)}"
    elif not d.main_inputs:
        d.fault = "has no audio input (timbrel hosts LV2 effects, not instruments or generators)"
    elif not d.main_outputs:
        d.fault = "has no audio output"
    elif unsupported:
        d.fault = f"has ports of a type timbrel cannot connect: {', '.join(unsupported)}"
    elif len({p.id for p in parameters}) != len(parameters):
        d.fault = "has two control ports with one symbol"


def _parameter(port: Port, low: float, high: float, default: float) -> tuple[Parameter, list[float]]:
    """The `Parameter` for a control input, and its switch's port values ([] for a number)."""
    symbol = port.symbol
    if not _SYMBOL.fullmatch(symbol):
        symbol = re.sub(r"\W", "_", symbol) or f"port{port.index}"
    low = 0.0 if math.isnan(low) else low
    high = low + 1.0 if math.isnan(high) else high
    low, high = min(low, high), max(low, high)
    default = low if math.isnan(default) else min(high, max(low, default))
    name = port.name or symbol
    group = _group(port)
    points = sorted(port.scale_points(), key=lambda p: p.value)
    if port.has_property(LV2 + "enumeration") and points:
        nearest = min(range(len(points)), key=lambda i: abs(points[i].value - default))
        labels = _unique([p.label or f"{p.value:g}" for p in points])
        parameter = Parameter(symbol, name, "", 0.0, float(len(points) - 1), float(nearest), smoothing_ms=0,
                              choices=tuple(labels), group=group)
        return parameter, [p.value for p in points]
    if port.has_property(LV2 + "toggled"):
        on = 1.0 if default > 0 else 0.0
        return Parameter(symbol, name, "", 0.0, 1.0, on, smoothing_ms=0, choices=("off", "on"), group=group), [0.0, 1.0]
    integer = port.has_property(LV2 + "integer")
    log = port.has_property(PORT_PROPS + "logarithmic") and low > 0
    parameter = Parameter(symbol, name, _unit(port), float(low), float(high), float(default),
                          scale="log" if log else "linear", smoothing_ms=0 if integer else 20.0, group=group)
    return parameter, []


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        result.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return result


def _unit(port: Port) -> str:
    """The port's unit symbol ("dB", "Hz"), or "" when it declares none."""
    unit, is_uri = port.get(UNITS + "unit")
    if not unit:
        return ""
    symbol = port.get_value(UNITS + "unit", UNITS + "symbol")
    if symbol:
        return symbol
    if is_uri and unit.startswith(UNITS):
        return UNIT_SYMBOLS.get(unit[len(UNITS):], "")
    return ""


def _group(port: Port) -> str:
    """The heading of the port's group, or "" when it belongs to none."""
    group, _ = port.get(PORT_GROUP)
    if not group:
        return ""
    for predicate in (RDFS_LABEL, LV2 + "name", LV2 + "symbol"):
        label = port.get_value(PORT_GROUP, predicate)
        if label:
            return label
    return group.rsplit("#", 1)[-1]
