"""A ctypes binding to liblilv (Debian's `liblilv-0-0`), the reference LV2 host library.

Only what timbrel's host needs is bound: the world (every installed plugin, read once),
a plugin's ports and their metadata, and instantiation. lilv's instance calls
(`connect_port`, `activate`, `run`…) are inline functions in its header, not symbols in the
library, so `Descriptor` reads the plugin's own `LV2_Descriptor` and calls its function
pointers directly. ctypes releases the GIL around every foreign call, so a plugin's `run`
never holds up the other Python threads.

Nodes that lilv returns as owned (`lilv_port_get`, `lilv_world_get`, `lilv_new_uri`) are
freed here; callers receive Python values (str, float, int), never raw nodes, except from
`World.uri`, whose nodes live as long as the world.
"""

from __future__ import annotations

import ctypes
import threading
from ctypes import POINTER, Structure, c_bool, c_char_p, c_double, c_float, c_uint32, c_void_p
from dataclasses import dataclass

from timbrel.engine.errors import TimbrelError

LIBRARY = "liblilv-0.so.0"
"""The shared library's soname, as Debian installs it (`apt install liblilv-0-0`)."""


class Feature(Structure):
    """`LV2_Feature`: a feature's URI and its data, as passed to a plugin's `instantiate`."""

    _fields_ = [("URI", c_char_p), ("data", c_void_p)]


CONNECT_PORT = ctypes.CFUNCTYPE(None, c_void_p, c_uint32, c_void_p)
HANDLE_ONLY = ctypes.CFUNCTYPE(None, c_void_p)
RUN = ctypes.CFUNCTYPE(None, c_void_p, c_uint32)
EXTENSION_DATA = ctypes.CFUNCTYPE(c_void_p, c_char_p)


class _DescriptorStruct(Structure):
    """`LV2_Descriptor`, the plugin's table of entry points."""

    _fields_ = [
        ("URI", c_char_p),
        ("instantiate", c_void_p),
        ("connect_port", CONNECT_PORT),
        ("activate", HANDLE_ONLY),
        ("run", RUN),
        ("deactivate", HANDLE_ONLY),
        ("cleanup", HANDLE_ONLY),
        ("extension_data", EXTENSION_DATA),
    ]


class _InstanceStruct(Structure):
    """`LilvInstanceImpl`, whose layout lilv.h publishes for its inline functions."""

    _fields_ = [("descriptor", POINTER(_DescriptorStruct)), ("handle", c_void_p), ("pimpl", c_void_p)]


def _load() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError as err:
        raise TimbrelError(f"LV2 hosting needs {LIBRARY} ({err}); install it with `apt install liblilv-0-0`") from None
    signatures = {
        "lilv_world_new": (c_void_p, []),
        "lilv_world_free": (None, [c_void_p]),
        "lilv_world_load_all": (None, [c_void_p]),
        "lilv_world_get_all_plugins": (c_void_p, [c_void_p]),
        "lilv_world_get": (c_void_p, [c_void_p, c_void_p, c_void_p, c_void_p]),
        "lilv_new_uri": (c_void_p, [c_void_p, c_char_p]),
        "lilv_node_free": (None, [c_void_p]),
        "lilv_node_as_string": (c_char_p, [c_void_p]),
        "lilv_node_as_float": (c_float, [c_void_p]),
        "lilv_node_is_uri": (c_bool, [c_void_p]),
        "lilv_node_is_literal": (c_bool, [c_void_p]),
        "lilv_plugins_size": (c_uint32, [c_void_p]),
        "lilv_plugins_begin": (c_void_p, [c_void_p]),
        "lilv_plugins_next": (c_void_p, [c_void_p, c_void_p]),
        "lilv_plugins_is_end": (c_bool, [c_void_p, c_void_p]),
        "lilv_plugins_get": (c_void_p, [c_void_p, c_void_p]),
        "lilv_plugins_get_by_uri": (c_void_p, [c_void_p, c_void_p]),
        "lilv_nodes_size": (c_uint32, [c_void_p]),
        "lilv_nodes_begin": (c_void_p, [c_void_p]),
        "lilv_nodes_next": (c_void_p, [c_void_p, c_void_p]),
        "lilv_nodes_is_end": (c_bool, [c_void_p, c_void_p]),
        "lilv_nodes_get": (c_void_p, [c_void_p, c_void_p]),
        "lilv_nodes_free": (None, [c_void_p]),
        "lilv_scale_points_begin": (c_void_p, [c_void_p]),
        "lilv_scale_points_next": (c_void_p, [c_void_p, c_void_p]),
        "lilv_scale_points_is_end": (c_bool, [c_void_p, c_void_p]),
        "lilv_scale_points_get": (c_void_p, [c_void_p, c_void_p]),
        "lilv_scale_points_free": (None, [c_void_p]),
        "lilv_scale_point_get_label": (c_void_p, [c_void_p]),
        "lilv_scale_point_get_value": (c_void_p, [c_void_p]),
        "lilv_plugin_get_uri": (c_void_p, [c_void_p]),
        "lilv_plugin_get_name": (c_void_p, [c_void_p]),
        "lilv_plugin_get_class": (c_void_p, [c_void_p]),
        "lilv_plugin_class_get_label": (c_void_p, [c_void_p]),
        "lilv_plugin_get_num_ports": (c_uint32, [c_void_p]),
        "lilv_plugin_get_port_by_index": (c_void_p, [c_void_p, c_uint32]),
        "lilv_plugin_get_required_features": (c_void_p, [c_void_p]),
        "lilv_plugin_has_extension_data": (c_bool, [c_void_p, c_void_p]),
        "lilv_plugin_get_port_ranges_float": (None, [c_void_p, c_void_p, c_void_p, c_void_p]),
        "lilv_plugin_instantiate": (c_void_p, [c_void_p, c_double, c_void_p]),
        "lilv_instance_free": (None, [c_void_p]),
        "lilv_port_is_a": (c_bool, [c_void_p, c_void_p, c_void_p]),
        "lilv_port_has_property": (c_bool, [c_void_p, c_void_p, c_void_p]),
        "lilv_port_get_symbol": (c_void_p, [c_void_p, c_void_p]),
        "lilv_port_get_name": (c_void_p, [c_void_p, c_void_p]),
        "lilv_port_get": (c_void_p, [c_void_p, c_void_p, c_void_p]),
        "lilv_port_get_scale_points": (c_void_p, [c_void_p, c_void_p]),
        "lilv_port_supports_event": (c_bool, [c_void_p, c_void_p, c_void_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """liblilv, loaded (and its signatures declared) on first use; TimbrelError when it is missing."""
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def available() -> bool:
    """Whether liblilv can be loaded on this machine."""
    try:
        library()
    except TimbrelError:
        return False
    return True


def _text(node: int | None) -> str:
    """A node's string form ("" for none); the node is not freed."""
    if not node:
        return ""
    return (library().lilv_node_as_string(node) or b"").decode("utf-8", "replace")


def _owned_text(node: int | None) -> str:
    """A node's string form, freeing the node."""
    text = _text(node)
    if node:
        library().lilv_node_free(node)
    return text


def _collection(begin, is_end, get, next_, collection: int | None) -> list[int]:
    if not collection:
        return []
    items, it = [], begin(collection)
    while not is_end(collection, it):
        items.append(get(collection, it))
        it = next_(collection, it)
    return items


@dataclass(frozen=True)
class ScalePoint:
    """One labelled value of a control port (`lv2:scalePoint`)."""

    label: str
    value: float


class World:
    """Every LV2 plugin installed on the machine (`LV2_PATH`, else ~/.lv2, /usr/lib/lv2 …),
    read once when made. lilv is not thread-safe (it reads a plugin's data files on first use),
    so callers hold `lock` around every call; none of them is made on the audio thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.lib = library()
        self.pointer = self.lib.lilv_world_new()
        self.lib.lilv_world_load_all(self.pointer)
        self._uris: dict[str, int] = {}

    def uri(self, text: str) -> int:
        """A URI node, made once and kept for the world's lifetime."""
        node = self._uris.get(text)
        if node is None:
            node = self._uris[text] = self.lib.lilv_new_uri(self.pointer, text.encode())
        return node

    def plugins(self) -> list[Plugin]:
        """Every plugin found, in lilv's order."""
        lib = self.lib
        plugins = lib.lilv_world_get_all_plugins(self.pointer)
        found = _collection(lib.lilv_plugins_begin, lib.lilv_plugins_is_end, lib.lilv_plugins_get,
                            lib.lilv_plugins_next, plugins)
        return [Plugin(self, pointer) for pointer in found]

    def plugin(self, uri: str) -> Plugin | None:
        """The plugin with this URI, or None when none is installed."""
        plugins = self.lib.lilv_world_get_all_plugins(self.pointer)
        pointer = self.lib.lilv_plugins_get_by_uri(plugins, self.uri(uri))
        return Plugin(self, pointer) if pointer else None

    def value(self, subject: int, predicate: str) -> str:
        """The first object of `subject predicate ?`, as text ("" when there is none)."""
        return _owned_text(self.lib.lilv_world_get(self.pointer, subject, self.uri(predicate), None))

    def value_of(self, subject: str, predicate: str) -> str:
        """As `value`, for a subject given by URI."""
        return self.value(self.uri(subject), predicate)


class Plugin:
    """One installed plugin's description (`LilvPlugin`), valid while its world lives."""

    def __init__(self, world: World, pointer: int):
        self.world = world
        self.pointer = pointer

    @property
    def uri(self) -> str:
        """The plugin's URI, its identity."""
        return _text(self.world.lib.lilv_plugin_get_uri(self.pointer))

    @property
    def name(self) -> str:
        """Its name as its author wrote it (`doap:name`)."""
        return _owned_text(self.world.lib.lilv_plugin_get_name(self.pointer))

    @property
    def class_label(self) -> str:
        """Its class in words ("Reverb Plugin", "Compressor Plugin")."""
        lib = self.world.lib
        return _text(lib.lilv_plugin_class_get_label(lib.lilv_plugin_get_class(self.pointer)))

    @property
    def num_ports(self) -> int:
        """How many ports it has, of every type; indices run from 0."""
        return int(self.world.lib.lilv_plugin_get_num_ports(self.pointer))

    def required_features(self) -> list[str]:
        """URIs of the features the plugin cannot run without."""
        lib = self.world.lib
        nodes = lib.lilv_plugin_get_required_features(self.pointer)
        uris = [_text(n) for n in _collection(lib.lilv_nodes_begin, lib.lilv_nodes_is_end, lib.lilv_nodes_get,
                                              lib.lilv_nodes_next, nodes)]
        if nodes:
            lib.lilv_nodes_free(nodes)
        return uris

    def has_extension_data(self, uri: str) -> bool:
        """Whether it declares the interface `uri` (`lv2:extensionData`), the worker's for one."""
        return bool(self.world.lib.lilv_plugin_has_extension_data(self.pointer, self.world.uri(uri)))

    def port_ranges(self) -> tuple[list[float], list[float], list[float]]:
        """(minimum, maximum, default) of every port, NaN where the plugin gives none."""
        n = self.num_ports
        arrays = [(c_float * n)() for _ in range(3)]
        self.world.lib.lilv_plugin_get_port_ranges_float(self.pointer, *(ctypes.addressof(a) for a in arrays))
        return tuple(list(a) for a in arrays)

    def port(self, index: int) -> Port:
        """Port number `index`."""
        return Port(self, self.world.lib.lilv_plugin_get_port_by_index(self.pointer, index), index)

    def instantiate(self, sample_rate: float, features: ctypes.Array) -> Instance | None:
        """A new instance at `sample_rate` Hz with `features` (a NULL-terminated array of
        `Feature` pointers); None when the plugin refuses."""
        pointer = self.world.lib.lilv_plugin_instantiate(self.pointer, float(sample_rate), ctypes.addressof(features))
        return Instance(self.world.lib, pointer) if pointer else None


class Port:
    """One port of a plugin (`LilvPort`)."""

    def __init__(self, plugin: Plugin, pointer: int, index: int):
        self.plugin = plugin
        self.pointer = pointer
        self.index = index

    def is_a(self, class_uri: str) -> bool:
        """Whether the port is of class `class_uri` (audio, control, input, output…)."""
        world = self.plugin.world
        return bool(world.lib.lilv_port_is_a(self.plugin.pointer, self.pointer, world.uri(class_uri)))

    def has_property(self, property_uri: str) -> bool:
        """Whether the port has the property `property_uri` (toggled, integer, logarithmic…)."""
        world = self.plugin.world
        return bool(world.lib.lilv_port_has_property(self.plugin.pointer, self.pointer, world.uri(property_uri)))

    @property
    def symbol(self) -> str:
        """The port's symbol: a C identifier, unique in the plugin, stable across versions."""
        return _text(self.plugin.world.lib.lilv_port_get_symbol(self.plugin.pointer, self.pointer))

    @property
    def name(self) -> str:
        """The port's name in words."""
        return _owned_text(self.plugin.world.lib.lilv_port_get_name(self.plugin.pointer, self.pointer))

    def get(self, predicate_uri: str) -> tuple[str, int]:
        """The port's first value for `predicate_uri` as text, and whether it is a URI (1) or a
        literal (0); ("", 0) when there is none."""
        world = self.plugin.world
        node = world.lib.lilv_port_get(self.plugin.pointer, self.pointer, world.uri(predicate_uri))
        if not node:
            return "", 0
        is_uri = int(world.lib.lilv_node_is_uri(node))
        return _owned_text(node), is_uri

    def get_value(self, predicate_uri: str, object_predicate: str) -> str:
        """Follow `predicate_uri` from the port, then `object_predicate` from there (a unit's
        symbol, a group's label); "" when either link is missing."""
        world = self.plugin.world
        node = world.lib.lilv_port_get(self.plugin.pointer, self.pointer, world.uri(predicate_uri))
        if not node:
            return ""
        text = world.value(node, object_predicate)
        world.lib.lilv_node_free(node)
        return text

    def scale_points(self) -> list[ScalePoint]:
        """The port's labelled values, in the order the plugin lists them."""
        lib = self.plugin.world.lib
        points = lib.lilv_port_get_scale_points(self.plugin.pointer, self.pointer)
        found = _collection(lib.lilv_scale_points_begin, lib.lilv_scale_points_is_end, lib.lilv_scale_points_get,
                            lib.lilv_scale_points_next, points)
        result = [ScalePoint(_text(lib.lilv_scale_point_get_label(p)),
                             float(lib.lilv_node_as_float(lib.lilv_scale_point_get_value(p)))) for p in found]
        if points:
            lib.lilv_scale_points_free(points)
        return result

    def supports_event(self, event_uri: str) -> bool:
        """Whether an atom port says it takes events of type `event_uri` (`atom:supports`)."""
        world = self.plugin.world
        return bool(world.lib.lilv_port_supports_event(self.plugin.pointer, self.pointer, world.uri(event_uri)))


class Instance:
    """A running plugin (`LilvInstance`): its handle and its descriptor's entry points.

    `connect_port`, `run` and the worker's calls are the only ones the audio thread makes;
    `activate`, `deactivate` and `free` happen off it.
    """

    def __init__(self, lib: ctypes.CDLL, pointer: int):
        self.lib = lib
        self.pointer = pointer
        impl = _InstanceStruct.from_address(pointer)
        self.handle = c_void_p(impl.handle)
        self.descriptor = impl.descriptor.contents
        self.connect_port = self.descriptor.connect_port
        self.run = self.descriptor.run
        self.active = False

    def extension_data(self, uri: str) -> int | None:
        """The plugin's extension data for `uri` (a pointer to its interface struct), or None."""
        if not self.descriptor.extension_data:
            return None
        return self.descriptor.extension_data(uri.encode()) or None

    def activate(self) -> None:
        """Get ready to run (resets the plugin's state); off the audio thread."""
        if not self.active and self.descriptor.activate:
            self.descriptor.activate(self.handle)
        self.active = True

    def deactivate(self) -> None:
        """Stop running; `activate` may follow. Off the audio thread."""
        if self.active and self.descriptor.deactivate:
            self.descriptor.deactivate(self.handle)
        self.active = False

    def free(self) -> None:
        """Deactivate and free the instance; it may not be used afterwards."""
        if self.pointer:
            self.deactivate()
            self.lib.lilv_instance_free(self.pointer)
            self.pointer = 0


__all__ = ["Feature", "Instance", "Plugin", "Port", "ScalePoint", "World", "available", "library"]
