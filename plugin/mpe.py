"""MPE, MIDI Polyphonic Expression (MMA/AMEI M1-100-UM v1.1), for the MIDI instrument (numba).

An MPE controller plays each note on a channel of its own, a *member channel*, so that pitch
bend, channel pressure and CC 74 can move one note alone. Member channels belong to a
*zone*: the Lower Zone's master channel is channel 1 and its members are 2, 3, … upwards;
the Upper Zone's master is channel 16 and its members are 15, 14, … downwards. Messages on a
master channel (bend, pressure, CC 74, the pedal, the mod wheel) act on the whole zone.

Zones come from the instrument's parameters `mpe_lower` and `mpe_upper` (member channels;
0: no zone), set by a preset or `--set`, and from the MPE Configuration Message (RPN 6 on
channel 1 or 16, data entry = members), which an MPE controller sends when it connects. The
latest of the two wins. A zone that would overlap the other shrinks the other, as the
specification says. Per-note bend spans ±48 semitones unless RPN 0 on a member channel says
otherwise (it applies to the whole zone); master-channel bend spans the instrument's
`bend_range_st`. Channels outside every zone follow the ordinary rules.

The state lives in two preallocated arrays the audio thread owns:

- `zones` `[ZONE_FIELDS]` float64: member counts and member bend ranges (semitones) per
  zone, and the parameter values last adopted;
- `channels` `[CHANNEL_FIELDS, 16]` float64: per channel, the member's bend (−1 … 1),
  pressure (0 … 1), timbre (CC 74, −1 … 1 around its centre, 64), and the RPN selected.
"""

from __future__ import annotations

import numba
import numpy as np

from timbrel.plugin.voices import IDLE

NONE, LOWER_MASTER, LOWER_MEMBER, UPPER_MASTER, UPPER_MEMBER = range(5)
"""A channel's role (`role`)."""
LOWER, UPPER, LOWER_RANGE_ST, UPPER_RANGE_ST, SEEN_LOWER, SEEN_UPPER, SEEN_RANGE = range(7)
ZONE_FIELDS = 7
BEND, PRESSURE, TIMBRE, RPN_MSB, RPN_LSB = range(5)
CHANNEL_FIELDS = 5
MEMBER_BEND_RANGE_ST = 48.0
"""The specification's default per-note bend range, which an MPE Configuration Message restores."""
RPN_NULL = 127.0
_DATA_ENTRY, _NRPN_LSB, _NRPN_MSB, _RPN_LSB, _RPN_MSB, _TIMBRE_CC, _RESET_CONTROLLERS = 6, 98, 99, 100, 101, 74, 121


def new_zones() -> tuple[np.ndarray, np.ndarray]:
    """A `zones` array and a `channels` array, `clear` (allocates: call off the audio thread)."""
    zones, channels = np.zeros(ZONE_FIELDS), np.zeros((CHANNEL_FIELDS, 16))
    clear(zones, channels)
    return zones, channels


@numba.njit(nogil=True, cache=True, _nrt=False)
def clear(zones, channels):
    """No zone until the parameters are next adopted, every channel's controllers at rest, no RPN selected."""
    zones[:] = 0.0
    zones[SEEN_LOWER] = zones[SEEN_UPPER] = zones[SEEN_RANGE] = -1.0
    channels[:, :] = 0.0
    channels[RPN_MSB, :] = RPN_NULL
    channels[RPN_LSB, :] = RPN_NULL


@numba.njit(nogil=True, cache=True, _nrt=False)
def role(zones, channel):
    """The role of `channel` (0 to 15) in the zones: NONE, LOWER_MASTER, LOWER_MEMBER, UPPER_MASTER or UPPER_MEMBER."""
    lower, upper = int(zones[LOWER]), int(zones[UPPER])
    if lower and channel == 0:
        return LOWER_MASTER
    if lower and 1 <= channel <= lower:
        return LOWER_MEMBER
    if upper and channel == 15:
        return UPPER_MASTER
    if upper and 15 - upper <= channel <= 14:
        return UPPER_MEMBER
    return NONE


@numba.njit(nogil=True, cache=True, _nrt=False)
def is_member(zones, channel):
    """Whether `channel` is a member channel of either zone."""
    r = role(zones, channel)
    return r == LOWER_MEMBER or r == UPPER_MEMBER


@numba.njit(nogil=True, cache=True, _nrt=False)
def _configure(zones, zone, members):
    """Give `zone` (LOWER or UPPER) `members` channels (0 removes it); the other zone shrinks to fit."""
    members = min(max(members, 0), 15)
    other = UPPER if zone == LOWER else LOWER
    zones[zone] = members
    if members and zones[other] > 14 - members:
        zones[other] = max(14 - members, 0)
    zones[LOWER_RANGE_ST if zone == LOWER else UPPER_RANGE_ST] = MEMBER_BEND_RANGE_ST


@numba.njit(nogil=True, cache=True, _nrt=False)
def adopt_parameters(zones, lower, upper, member_range_st):
    """Take the instrument's zone parameters if they changed since last adopted (a preset, `--set`,
    the control surface); an MPE Configuration Message received since is then overridden."""
    if lower == zones[SEEN_LOWER] and upper == zones[SEEN_UPPER] and member_range_st == zones[SEEN_RANGE]:
        return
    zones[SEEN_LOWER], zones[SEEN_UPPER], zones[SEEN_RANGE] = lower, upper, member_range_st
    zones[LOWER] = zones[UPPER] = 0.0
    _configure(zones, UPPER, int(upper))
    _configure(zones, LOWER, int(lower))
    zones[LOWER_RANGE_ST] = zones[UPPER_RANGE_ST] = member_range_st


@numba.njit(nogil=True, cache=True, _nrt=False)
def control(zones, channels, channel, number, value):
    """Apply control change `number` = `value` on `channel` where MPE gives it a meaning: RPN
    selection and data entry (the MPE Configuration Message, per-note bend range), and CC 74
    and CC 121 on a member channel. Returns whether it was consumed."""
    if number == _RPN_MSB:
        channels[RPN_MSB, channel] = value
        return True
    if number == _RPN_LSB:
        channels[RPN_LSB, channel] = value
        return True
    if number == _NRPN_MSB or number == _NRPN_LSB:
        channels[RPN_MSB, channel] = channels[RPN_LSB, channel] = RPN_NULL
        return False
    if number == _DATA_ENTRY:
        if channels[RPN_MSB, channel] != 0.0:
            return False
        selected = channels[RPN_LSB, channel]
        if selected == 6.0 and (channel == 0 or channel == 15):
            _configure(zones, LOWER if channel == 0 else UPPER, value)
            return True
        if selected == 0.0:
            r = role(zones, channel)
            if r == LOWER_MEMBER:
                zones[LOWER_RANGE_ST] = value
                return True
            if r == UPPER_MEMBER:
                zones[UPPER_RANGE_ST] = value
                return True
        return False
    if not is_member(zones, channel):
        return False
    if number == _TIMBRE_CC:
        channels[TIMBRE, channel] = timbre(value)
        return True
    if number == _RESET_CONTROLLERS:
        channels[BEND, channel] = channels[PRESSURE, channel] = channels[TIMBRE, channel] = 0.0
        return True
    return False


@numba.njit(nogil=True, cache=True, _nrt=False)
def timbre(value):
    """CC 74 (0 … 127) as −1 … 1 around its centre, 64."""
    return max(-1.0, (value - 64.0) / 63.0)


@numba.njit(nogil=True, cache=True, _nrt=False)
def note_controls(zones, channels, global_bend, global_pressure, global_timbre, bend_range_st, keys, states,
                  bend_st, pressure, brightness):
    """Each sounding voice's pitch bend (semitones), pressure (0 … 1) and brightness (−1 … 1).

    `keys` `[voices]`: the member channel a voice plays on, or −1 for a note outside any zone.
    A member's own controllers add to the zone's (the master channel's, which are the
    instrument-wide `global_*` values); other voices take the instrument-wide ones.
    """
    for v in range(keys.shape[0]):
        if states[v] == IDLE:
            continue
        bend_st[v] = global_bend * bend_range_st
        pressure[v] = global_pressure
        brightness[v] = global_timbre
        key = keys[v]
        if key < 0:
            continue
        r = role(zones, key)
        if r == LOWER_MEMBER or r == UPPER_MEMBER:
            bend_st[v] += channels[BEND, key] * zones[LOWER_RANGE_ST if r == LOWER_MEMBER else UPPER_RANGE_ST]
            pressure[v] = min(1.0, pressure[v] + channels[PRESSURE, key])
            brightness[v] = min(1.0, max(-1.0, brightness[v] + channels[TIMBRE, key]))
