"""The LV2 host features timbrel gives a plugin: URID map and unmap, options (block length,
sample rate), bounded block length, and the worker's schedule (see `worker`).

The URID map is one per process, shared by every plugin, so a URI means the same number to
all of them. Plugins map URIs while they are instantiated (off the audio thread); the map
takes a lock, which is why a plugin must not map in `run` (LV2 says so too).
"""

from __future__ import annotations

import ctypes
import threading
from ctypes import POINTER, Structure, c_char_p, c_float, c_int32, c_uint32, c_void_p

from timbrel.plugin.lv2.lilv import Feature

URID_MAP = "http://lv2plug.in/ns/ext/urid#map"
URID_UNMAP = "http://lv2plug.in/ns/ext/urid#unmap"
OPTIONS = "http://lv2plug.in/ns/ext/options#options"
BOUNDED_BLOCK = "http://lv2plug.in/ns/ext/buf-size#boundedBlockLength"
WORKER_SCHEDULE = "http://lv2plug.in/ns/ext/worker#schedule"

PROVIDED = (URID_MAP, URID_UNMAP, OPTIONS, BOUNDED_BLOCK, WORKER_SCHEDULE)
"""The features a plugin is given (each instance, every time)."""

ACCEPTED = PROVIDED + (
    "http://lv2plug.in/ns/lv2core#isLive",
    "http://lv2plug.in/ns/lv2core#hardRTCapable",
    "http://lv2plug.in/ns/lv2core#inPlaceBroken",
)
"""Required features a plugin may list and still be hosted: those given, plus properties of the
plugin that some list as features (timbrel runs live, and never processes in place)."""

MIN_BLOCK = "http://lv2plug.in/ns/ext/buf-size#minBlockLength"
MAX_BLOCK = "http://lv2plug.in/ns/ext/buf-size#maxBlockLength"
NOMINAL_BLOCK = "http://lv2plug.in/ns/ext/buf-size#nominalBlockLength"
SAMPLE_RATE = "http://lv2plug.in/ns/ext/parameters#sampleRate"
ATOM_INT = "http://lv2plug.in/ns/ext/atom#Int"
ATOM_FLOAT = "http://lv2plug.in/ns/ext/atom#Float"

MAP_FUNCTION = ctypes.CFUNCTYPE(c_uint32, c_void_p, c_char_p)
UNMAP_FUNCTION = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_uint32)


class _Map(Structure):
    """`LV2_URID_Map`."""

    _fields_ = [("handle", c_void_p), ("map", MAP_FUNCTION)]


class _Unmap(Structure):
    """`LV2_URID_Unmap`."""

    _fields_ = [("handle", c_void_p), ("unmap", UNMAP_FUNCTION)]


class _Option(Structure):
    """`LV2_Options_Option`: context, subject, key, size, type, value."""

    _fields_ = [("context", c_int32), ("subject", c_uint32), ("key", c_uint32), ("size", c_uint32),
                ("type", c_uint32), ("value", c_void_p)]


class UridMap:
    """URIs to integers (URIDs, from 1) and back, for the whole process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[bytes, int] = {}
        self._uris: list[ctypes.Array] = []
        self._map_function = MAP_FUNCTION(self._map)
        self._unmap_function = UNMAP_FUNCTION(self._unmap)
        self.map_struct = _Map(None, self._map_function)
        self.unmap_struct = _Unmap(None, self._unmap_function)

    def map(self, uri: str) -> int:
        """The URID of `uri` (a new one the first time)."""
        return self._map(None, uri.encode())

    def unmap(self, urid: int) -> str:
        """The URI of `urid`; "" for one never given out."""
        with self._lock:
            return self._uris[urid - 1].value.decode() if 0 < urid <= len(self._uris) else ""

    def _map(self, handle: int | None, uri: bytes | None) -> int:
        if not uri:
            return 0
        with self._lock:
            urid = self._ids.get(uri)
            if urid is None:
                self._uris.append(ctypes.create_string_buffer(uri))
                urid = self._ids[uri] = len(self._uris)
            return urid

    def _unmap(self, handle: int | None, urid: int) -> int | None:
        with self._lock:
            if 0 < urid <= len(self._uris):
                return ctypes.addressof(self._uris[urid - 1])
            return None


_urids: UridMap | None = None
_urids_lock = threading.Lock()


def urids() -> UridMap:
    """The process's URID map, made on first use."""
    global _urids
    with _urids_lock:
        if _urids is None:
            _urids = UridMap()
        return _urids


class FeatureSet:
    """The feature array for one instance at one sample rate and largest block.

    Holds every structure the plugin may keep a pointer to, so it must live as long as the
    instance. `schedule` is the worker's `LV2_Worker_Schedule` (or None to withhold it).
    """

    def __init__(self, sample_rate: float, max_block: int, schedule: Structure | None = None):
        self.urids = urids()
        m = self.urids.map
        self._ints = (c_int32 * 3)(1, int(max_block), int(max_block))
        self._rate = c_float(float(sample_rate))
        entries = [(MIN_BLOCK, ATOM_INT, ctypes.addressof(self._ints), 4),
                   (MAX_BLOCK, ATOM_INT, ctypes.addressof(self._ints) + 4, 4),
                   (NOMINAL_BLOCK, ATOM_INT, ctypes.addressof(self._ints) + 8, 4),
                   (SAMPLE_RATE, ATOM_FLOAT, ctypes.addressof(self._rate), 4)]
        self._options = (_Option * (len(entries) + 1))()
        for option, (key, kind, address, size) in zip(self._options, entries):
            option.context, option.subject, option.key = 0, 0, m(key)
            option.size, option.type, option.value = size, m(kind), address
        data = {URID_MAP: ctypes.addressof(self.urids.map_struct),
                URID_UNMAP: ctypes.addressof(self.urids.unmap_struct),
                OPTIONS: ctypes.addressof(self._options),
                BOUNDED_BLOCK: None}
        if schedule is not None:
            data[WORKER_SCHEDULE] = ctypes.addressof(schedule)
        self._features = [Feature(uri.encode(), address) for uri, address in data.items()]
        self.array = (POINTER(Feature) * (len(self._features) + 1))(*(ctypes.pointer(f) for f in self._features))
        self.provided = tuple(data)
