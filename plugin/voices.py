"""Per-frame voice kernels of the MIDI instrument (numba): envelopes, pitch, model batching.

All of these run on the audio thread once per control frame and touch only preallocated
arrays. Voice state lives in a handful of arrays indexed by voice slot.
"""

from __future__ import annotations

import math

import numba

IDLE, HELD, SUSTAINED, RELEASED, FADING = 0, 1, 2, 3, 4
ATTACK, DECAY, SUSTAIN, RELEASE = 0, 1, 2, 3
ENVELOPE_FLOOR_DB = -60.0
"""Where an envelope starts and ends, relative to the note's level (dB)."""

# Columns of the float parameter vector passed to `voice_frame`.
(P_ATTACK_S, P_DECAY_S, P_SUSTAIN_DB, P_RELEASE_S, P_FRAME_S, P_GLIDE_S, P_LEVEL_DB, P_PRESSURE_DB, P_TRANSPOSE_ST,
 P_LOUDNESS_LO, P_LOUDNESS_HI, P_VELOCITY_CURVE) = range(12)
FRAME_PARAMS = 12


@numba.njit(nogil=True, cache=True, _nrt=False)
def voice_frame(state, velocity, env_db, stage, pitch, glide_from, bend_st, pressure, level_db, params,
                f0_out, loudness_out, scale_out, order, finished):
    """Advance every sounding voice by one frame and compute its model inputs.

    `bend_st` (semitones: bend and expression), `pressure` (0 … 1, scaled by
    `params[P_PRESSURE_DB]`) and `level_db` (expression) are per voice
    (`timbrel.plugin.mpe.note_controls`, `timbrel.plugin.expression.expression_frame`).
    Writes f0 (Hz) and loudness (dB) per voice, `scale_out` (1, or 0 for a voice fading
    out this frame), the slots to run through the model in `order` (returns how many),
    and the slots whose fade ended and can be stopped in `finished` (count in finished[-1]).
    """
    voices = state.shape[0]
    dt = params[P_FRAME_S]
    count = 0
    done = 0
    glide = 1.0 - math.exp(-dt / params[P_GLIDE_S]) if params[P_GLIDE_S] > 0.0 else 1.0
    for v in range(voices):
        s = state[v]
        if s == IDLE:
            continue
        if s == FADING:
            finished[done] = v
            done += 1
            state[v] = IDLE
            continue
        if stage[v] == ATTACK:
            env_db[v] += -ENVELOPE_FLOOR_DB * dt / max(params[P_ATTACK_S], dt)
            if env_db[v] >= 0.0:
                env_db[v] = 0.0
                stage[v] = DECAY
        elif stage[v] == DECAY:
            env_db[v] -= -ENVELOPE_FLOOR_DB * dt / max(params[P_DECAY_S], dt)
            if env_db[v] <= params[P_SUSTAIN_DB]:
                env_db[v] = params[P_SUSTAIN_DB]
                stage[v] = SUSTAIN
        elif stage[v] == SUSTAIN:
            env_db[v] = params[P_SUSTAIN_DB]
        else:
            env_db[v] -= -ENVELOPE_FLOOR_DB * dt / max(params[P_RELEASE_S], dt)
        glide_from[v] += (pitch[v] - glide_from[v]) * glide
        semitones = glide_from[v] + bend_st[v] + params[P_TRANSPOSE_ST]
        f0_out[v] = 440.0 * 2.0 ** ((semitones - 69.0) / 12.0)
        reach = (velocity[v] / 127.0) ** params[P_VELOCITY_CURVE]
        base = params[P_LOUDNESS_LO] + (params[P_LOUDNESS_HI] - params[P_LOUDNESS_LO]) * reach
        loudness_out[v] = base + env_db[v] + params[P_LEVEL_DB] + pressure[v] * params[P_PRESSURE_DB] + level_db[v]
        scale_out[v] = 1.0
        if stage[v] == RELEASE and env_db[v] <= ENVELOPE_FLOOR_DB:
            state[v] = FADING
            scale_out[v] = 0.0
        order[count] = v
        count += 1
    finished[finished.shape[0] - 1] = done
    return count


@numba.njit(nogil=True, cache=True, _nrt=False, inline="always")
def _gather_voice(i, v, f0, loudness, gru_state, f0_in, loudness_in, state_in):
    """Voice `v`'s model inputs into row `i` of the batch (`gather_inputs`)."""
    f0_in[i, 0] = f0[v]
    loudness_in[i, 0] = loudness[v]
    for k in range(state_in.shape[1]):
        state_in[i, k] = gru_state[v, k]


@numba.njit(nogil=True, cache=True, _nrt=False)
def gather_inputs(order, count, f0, loudness, gru_state, f0_in, loudness_in, state_in):
    """Pack the voices in `order[:count]` into the model's batch inputs `[count, 1]`, `[count, H]`."""
    for i in range(count):
        _gather_voice(i, order[i], f0, loudness, gru_state, f0_in, loudness_in, state_in)


@numba.njit(nogil=True, cache=True, _nrt=False, inline="always")
def _scatter_voice(i, v, scale, tilt, noise_gain, amp_out, dist_out, noise_out, state_out, frame_amp, frame_dist,
                   frame_noise, gru_state):
    """Row `i` of the model's outputs into voice `v`'s synth frame and GRU state (`scatter_outputs`);
    returns 1 if the voice was muted, else 0."""
    finite = math.isfinite(amp_out[i, 0])
    for k in range(dist_out.shape[2]):
        finite = finite and math.isfinite(dist_out[i, 0, k])
    for k in range(noise_out.shape[2]):
        finite = finite and math.isfinite(noise_out[i, 0, k])
    for k in range(state_out.shape[1]):
        finite = finite and math.isfinite(state_out[i, k])
    if not finite:
        frame_amp[v] = 0.0
        frame_dist[v, :] = 0.0
        frame_noise[v, :] = 0.0
        gru_state[v, :] = 0.0
        return 1
    g = scale[v]
    frame_amp[v] = amp_out[i, 0] * g
    t = tilt[v]
    for k in range(dist_out.shape[2]):
        frame_dist[v, k] = dist_out[i, 0, k] if t == 0.0 else dist_out[i, 0, k] * math.exp(t * math.log(k + 1.0))
    for k in range(noise_out.shape[2]):
        frame_noise[v, k] = noise_out[i, 0, k] * g * noise_gain[v]
    for k in range(state_out.shape[1]):
        gru_state[v, k] = state_out[i, k]
    return 0


@numba.njit(nogil=True, cache=True, _nrt=False)
def scatter_outputs(order, count, scale, tilt, noise_gain, amp_out, dist_out, noise_out, state_out,
                    frame_amp, frame_dist, frame_noise, gru_state):
    """Unpack the model's batch outputs into per-voice synth frames and GRU states.

    `tilt` per voice tilts the harmonic distribution by `(k + 1) ** tilt` for harmonic k: the
    synth renormalises it, so brightness moves while the amplitude holds. `noise_gain` per voice
    multiplies the noise magnitudes.

    A voice whose outputs are not all finite is muted for the frame and its GRU state is
    zeroed, so one bad frame can neither sound nor poison the next. Returns how many
    voices were muted that way.
    """
    bad = 0
    for i in range(count):
        bad += _scatter_voice(i, order[i], scale, tilt, noise_gain, amp_out, dist_out, noise_out, state_out,
                              frame_amp, frame_dist, frame_noise, gru_state)
    return bad


PAD_F0_HZ, PAD_LOUDNESS_DB = 440.0, -120.0
"""What the rows of a stacked batch that no voice fills are given: finite, and never read back."""


@numba.njit(nogil=True, cache=True, _nrt=False)
def gather_stacked(runners, orders, batches, f0, loudness, gru_state, f0_in, loudness_in, state_in):
    """Pack the batches of a stack's models (model m is the ensemble's runner `runners[m]`, whose
    voices are `orders[r, :batches[r]]`) into inputs `[models * width, ...]`, model m's voices
    in rows `m * width + j` and the rows past its batch padded; returns `width`, the largest
    such batch (0: nothing to run)."""
    width = 0
    for m in range(runners.shape[0]):
        width = max(width, batches[runners[m]])
    for m in range(runners.shape[0] if width else 0):
        r = runners[m]
        for j in range(width):
            i = m * width + j
            if j < batches[r]:
                _gather_voice(i, orders[r, j], f0, loudness, gru_state, f0_in, loudness_in, state_in)
            else:
                f0_in[i, 0] = PAD_F0_HZ
                loudness_in[i, 0] = PAD_LOUDNESS_DB
                state_in[i, :] = 0.0
    return width


@numba.njit(nogil=True, cache=True, _nrt=False)
def scatter_stacked(runners, orders, batches, width, scale, tilt, noise_gain, amp_out, dist_out, noise_out, state_out,
                    frame_amp, frame_dist, frame_noise, gru_state):
    """`scatter_outputs` for a stacked batch (`gather_stacked`'s layout); the stack's runners'
    batches are set to 0. Returns how many voices were muted."""
    bad = 0
    for m in range(runners.shape[0]):
        r = runners[m]
        for j in range(batches[r]):
            bad += _scatter_voice(m * width + j, orders[r, j], scale, tilt, noise_gain, amp_out, dist_out, noise_out,
                                  state_out, frame_amp, frame_dist, frame_noise, gru_state)
        batches[r] = 0
    return bad
