"""The General MIDI Level 1 program map: each of the 128 GM programs played by the closest
factory preset.

Programs are numbered 0 to 127 here, as a MIDI Program Change message carries them; GM
documents and most instruments number them 1 to 128 (`GM_PROGRAMS[0]`, "Acoustic Grand
Piano", is their program 1).

Each program's preset was chosen by family first (the GM family's own instrument where a
factory model plays it, else the nearest sustained timbre) and then by playing range: the
preset's model should have been trained on the notes the program usually plays. Where a
program's usual range lies mostly outside its model's trained range, `transpose_st` moves
its notes by whole octaves to fit (added to the note number, as the MIDI instrument's
`transpose_st` parameter does). No factory model is plucked, struck or percussive, so
pianos, guitars, mallets, percussion and sound effects play a sustained stand-in chosen by
register; their reasons say so. `docs/GM.md` lists the map with its reasons.

Drums on `DRUM_CHANNEL` are skipped, because no factory model is percussive.
"""

from __future__ import annotations

from dataclasses import dataclass

DRUM_CHANNEL = 9
"""The GM percussion channel, 0-based (channel 10 to a musician); skipped, as no factory model is percussive."""

GM_PROGRAMS: tuple[str, ...] = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavi",
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone",
    "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ",
    "Reed Organ", "Accordion", "Harmonica", "Tango Accordion",
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar harmonics",
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    "Violin", "Viola", "Cello", "Contrabass",
    "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "SynthStrings 1", "SynthStrings 2",
    "Choir Aahs", "Voice Oohs", "Synth Voice", "Orchestra Hit",
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "SynthBrass 1", "SynthBrass 2",
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax",
    "Oboe", "English Horn", "Bassoon", "Clarinet",
    "Piccolo", "Flute", "Recorder", "Pan Flute",
    "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)",
    "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)",
    "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)",
    "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    "Sitar", "Banjo", "Shamisen", "Koto",
    "Kalimba", "Bag pipe", "Fiddle", "Shanai",
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock",
    "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet",
    "Telephone Ring", "Helicopter", "Applause", "Gunshot",
)
"""The 128 GM Level 1 program names (MMA spelling); index = program number 0 to 127."""

GM_FAMILIES: tuple[str, ...] = (
    "Piano", "Chromatic Percussion", "Organ", "Guitar", "Bass", "Strings", "Ensemble", "Brass",
    "Reed", "Pipe", "Synth Lead", "Synth Pad", "Synth Effects", "Ethnic", "Percussive", "Sound Effects",
)
"""The 16 GM families, in program order: family `f` holds programs `8 * f` to `8 * f + 7`."""

PROGRAMS_PER_FAMILY = 8
"""Programs in each GM family."""


@dataclass(frozen=True)
class GMChoice:
    """The factory preset that plays one GM program.

    `program` is 0 to 127 (as in a Program Change), `name` its GM name, `family` its GM
    family, `preset` the factory preset's slug (its file stem, accepted by
    `Library.get`), `transpose_st` the whole-octave shift added to its note numbers
    (semitones, usually 0), and `reason` one sentence saying why.
    """

    program: int
    name: str
    family: str
    preset: str
    transpose_st: int
    reason: str


_NOT_PLUCKED = "no factory model is plucked"
_NOT_STRUCK = "no factory model is percussive"

_CHOICES: tuple[tuple[str, int, str], ...] = (
    # Piano
    ("french-horn", 0, f"Piano, {_NOT_STRUCK}; the horn's round, nearly vibrato-free tone spans F2-F5, the middle of both hands."),
    ("clarinet", 0, f"Bright piano, {_NOT_STRUCK}; the clarinet speaks fast without vibrato over D3-D6, brighter than the horn."),
    ("french-horn", 0, f"Electric grand, {_NOT_STRUCK}; played like the acoustic grand by the horn's round F2-F5."),
    ("violin-section", 0, f"Detuned honky-tonk piano, {_NOT_STRUCK}; the section preset's chorus gives the detuned unisons."),
    ("french-horn", 0, f"Mellow tine electric piano, {_NOT_STRUCK}; the horn's soft, round F2-F5 is the closest sustained tone."),
    ("clarinet", 0, f"Glassy FM electric piano, {_NOT_STRUCK}; the clarinet's hollow odd-harmonic tone over D3-D6."),
    ("oboe", 0, f"Bright, thin harpsichord, {_NOT_PLUCKED}; the oboe's nasal upper-middle register is the nearest colour."),
    ("muted-trumpet", 0, f"Funky, nasal clavinet, {_NOT_PLUCKED}; the muted trumpet's cut lows and nasal bump in G3-A#5."),
    # Chromatic Percussion
    ("flute", 0, f"Celesta's pure, high bell tone, {_NOT_STRUCK}; the flute is the purest high model, C4-A6."),
    ("flute", -12, f"Glockenspiel, {_NOT_STRUCK}; the flute's pure tone, an octave down to bring G5-C8 into its trained range."),
    ("flute", 0, f"Music box's high, pure tines, {_NOT_STRUCK}; the flute covers their C4-A6 register."),
    ("clarinet", 0, f"Vibraphone's mellow bars, {_NOT_STRUCK}; the clarinet's hollow, steady tone covers its F3-F6."),
    ("clarinet", 0, f"Marimba's woody middle register, {_NOT_STRUCK}; the clarinet's woody chalumeau tone over D3-D6."),
    ("flute", -12, f"Xylophone, {_NOT_STRUCK}; the flute's high register, an octave down to bring F4-C8 nearer its trained range."),
    ("french-horn", 0, f"Tubular bells in C4-F5, {_NOT_STRUCK}; the horn's round, ringing upper register sits there."),
    ("violin", 0, f"Hammered dulcimer strings, {_NOT_STRUCK}; the violin's bright string tone over the same G3-E6."),
    # Organ
    ("clarinet", 0, "Drawbar organ: steady and vibrato-free with strong odd harmonics, as the clarinet is."),
    ("clarinet", 0, "Percussive organ: the clarinet's steady odd-harmonic tone and quick attack."),
    ("alto-sax", 0, "Gritty rock organ: the alto sax's reedy growl in the middle register C#3-G#5."),
    ("french-horn", 0, "Church organ's broad diapason chords: the horn's round, sustained F2-F5."),
    ("clarinet", 0, "Reed organ's free reeds: the clarinet is the steadiest reed tone, over D3-D6."),
    ("clarinet", 0, "Accordion's free reeds: a steady reed tone without vibrato in the accordion's middle register."),
    ("clarinet", 0, "Harmonica's reedy melody in C4-C6: the clarinet's reed tone covers it without a transpose."),
    ("alto-sax", 0, "Darker, more cutting bandoneon: the alto sax's reedy middle register C#3-G#5."),
    # Guitar
    ("cello", 0, f"Nylon guitar, {_NOT_PLUCKED}; the cello's warm string tone covers the guitar's E2-A4."),
    ("cello", 0, f"Steel guitar, {_NOT_PLUCKED}; the cello's string tone covers the guitar's E2-A4."),
    ("french-horn", 0, f"Mellow jazz guitar, {_NOT_PLUCKED}; the horn's round tone over F2-F5, the jazz guitar's span."),
    ("cello", 0, f"Clean electric guitar, {_NOT_PLUCKED}; the cello's string tone in the guitar's E2-A4."),
    ("bassoon", 0, f"Short, dark palm-muted notes, {_NOT_PLUCKED}; the bassoon's dry low reed in the guitar's lower octaves."),
    ("alto-sax", 0, f"Overdriven lead guitar, {_NOT_PLUCKED}; the alto sax's growl in the lead register C#3-G#5."),
    ("trombone", 0, f"Distorted power chords, {_NOT_PLUCKED}; the trombone's saturated brass in the power-chord register E2-C5."),
    ("flute", 0, f"Guitar harmonics ring pure and high, {_NOT_PLUCKED}; the flute is the purest high tone."),
    # Bass
    ("contrabass", 0, f"Plucked double bass, {_NOT_PLUCKED}; the contrabass model is the same instrument bowed, E1-G3."),
    ("contrabass", 0, f"Finger bass, {_NOT_PLUCKED}; the contrabass covers the bass line's E1-G3."),
    ("tuba", 0, f"Pick bass's harder attack, {_NOT_PLUCKED}; the tuba speaks faster than the contrabass over E1-A#3."),
    ("contrabass", 0, f"Fretless bass slides, {_NOT_PLUCKED}; the bowed contrabass glides through E1-G3."),
    ("tuba", 0, f"Punchy slap bass, {_NOT_PLUCKED}; the tuba's firm attack over E1-A#3."),
    ("tuba", 0, f"Punchy slap bass, {_NOT_PLUCKED}; the tuba's firm attack over E1-A#3."),
    ("tuba", 0, "Round analogue synth bass: the tuba's smooth low brass over E1-A#3."),
    ("bassoon", 0, "Buzzy synth bass: the bassoon's reedy low register, A#1-C5."),
    # Strings
    ("violin", 0, "The solo violin model itself, trained on G3-E6."),
    ("violin", 0, "Viola: bowed strings; its C3-A5 lies mostly in the violin's G3-E6, closer than the cello's."),
    ("cello", 0, "The cello model itself, trained on C2-A4."),
    ("contrabass", 0, "The contrabass model itself, trained on E1-G3."),
    ("violin-section", 0, "Tremolo strings are a section sound; the section preset's chorus and room suit it."),
    ("violin", 0, f"Pizzicato strings, {_NOT_PLUCKED}; the solo violin's quick, close string tone."),
    ("cello", 0, f"Harp, {_NOT_PLUCKED}; the cello's string tone over C2-A4, the middle of the harp's span."),
    ("tuba", 0, f"Timpani, {_NOT_STRUCK}; the tuba's round low tone sits in the timpani's D2-A3."),
    # Ensemble
    ("violin-section", 0, "Sustained bowed strings; the section preset's detune suits an ensemble patch."),
    ("violin-section", 0, "Slower, softer string section; the section preset's chorus and slow attack suit it."),
    ("violin-section", 0, "Synth strings are a detuned string pad, as the section preset plays the violin."),
    ("violin-section", 0, "Synth strings are a detuned string pad, as the section preset plays the violin."),
    ("choir-aah", 0, "The choir 'aah' model itself, trained on D3-E5."),
    ("choir-aah", 0, "Voice 'ooh': the choir model's sustained vowel in the same register."),
    ("choir-aah", 0, "Synth voice: the choir model's vowel pad with its chorus."),
    ("trombone", 0, f"Orchestra hit, {_NOT_STRUCK}; a loud, fast brass stab in the hit's C3-C5."),
    # Brass
    ("trumpet", 0, "The trumpet model itself, trained on G3-A#5."),
    ("trombone", 0, "The trombone model itself, trained on E2-C5."),
    ("tuba", 0, "The tuba model itself, trained on E1-A#3."),
    ("muted-trumpet", 0, "The trumpet model through the cup-mute EQ."),
    ("french-horn", 0, "The French horn model itself, trained on F2-F5."),
    ("trumpet", 0, "Punchy brass section: the bright, compressed trumpet carries the section's top lines."),
    ("trombone", 0, "Brassy synth riffs in the low-middle register: the trombone's E2-C5."),
    ("french-horn", 0, "Softer, rounder synth brass: the horn's mellow F2-F5."),
    # Reed
    ("oboe", 0, "Reed family; the nasal soprano's A#3-D#6 fits the oboe's range, which the alto sax would overshoot."),
    ("alto-sax", 0, "The alto sax model itself, trained on C#3-G#5."),
    ("alto-sax", 0, "Tenor sax: the alto model's sax tone; the tenor's G#2-D#5 lies a fourth lower, mostly inside."),
    ("bassoon", 0, "Reed family; the bassoon's dark reed covers the baritone's C2-A4 without the octave an alto would need."),
    ("oboe", 0, "The oboe model itself, trained on A#3-D6."),
    ("oboe", 0, "English horn: the oboe's double reed; its E3-A5 lies a fifth lower, mostly inside."),
    ("bassoon", 0, "The bassoon model itself, trained on A#1-C5."),
    ("clarinet", 0, "The clarinet model itself, trained on D3-D6."),
    # Pipe
    ("flute", -12, "Piccolo: the flute's tone, an octave down to bring the piccolo's D5-C8 into the flute's trained C4-A6."),
    ("flute", 0, "The flute model itself, trained on C4-A6."),
    ("flute", 0, "Recorder: a pure, breathy pipe in the flute's register."),
    ("flute", 0, "Pan flute: breathy pipes in the flute's register."),
    ("flute", 0, "Blown bottle: a breathy, hollow pipe tone; the flute's breath noise suits it."),
    ("flute", 0, "Shakuhachi: breathy end-blown flute in D4-E6, inside the flute's range."),
    ("flute", 0, "Whistle: a pure, high, breathy tone; the flute's top reaches most of it."),
    ("flute", 0, "Ocarina: a pure vessel flute in C4-C6."),
    # Synth Lead
    ("clarinet", 0, "Square-wave lead: odd harmonics only, the clarinet's hollow tone."),
    ("sax-lead", 0, "Sawtooth lead: the mono sax lead's bright, compressed line with its echo."),
    ("flute", 0, "Calliope lead: a breathy pipe-organ whistle, as the flute is."),
    ("flute", 0, "Chiff lead: a breathy attack on a pure tone, as the flute speaks."),
    ("sax-lead", 0, "Charang, a distorted guitar-like lead: the mono sax lead's growl and compression."),
    ("choir-aah", 0, "Voice lead: the choir model's vowel."),
    ("trumpet", 0, "Fifths lead: a brassy, bright lead in the trumpet's G3-A#5."),
    ("trombone", 0, "Bass-and-lead: a brassy line reaching low, the trombone's E2-C5 with its glide."),
    # Synth Pad
    ("choir-aah", 0, "New-age pad: the choir's soft, slow swells."),
    ("french-horn", 0, "Warm pad: the horn's round, mellow tone in F2-F5."),
    ("violin-section", 0, "Polysynth pad: detuned chords, as the section preset's chorus plays them."),
    ("choir-aah", 0, "Choir pad: the choir model itself."),
    ("violin-section", 0, "Bowed pad: the bowed violin section."),
    ("muted-trumpet", 0, "Metallic pad: the muted trumpet's nasal, filtered brass."),
    ("choir-aah", 0, "Halo pad: an airy, voice-like pad, as the choir sings."),
    ("violin-section", 0, "Sweep pad: slow attack and moving chorus, as the section preset plays."),
    # Synth Effects
    ("flute", 0, "Rain: a bright, twinkling high pad; the flute's high, breathy tone."),
    ("violin-section", 0, "Soundtrack: a slow, wide string-like swell."),
    ("flute", 0, f"Crystal: high, bell-like tones, {_NOT_STRUCK}; the flute is the purest high model."),
    ("choir-aah", 0, "Atmosphere: a soft, airy pad, as the choir sings."),
    ("violin-section", 0, "Brightness: a bright, shimmering pad from the violin section."),
    ("bassoon", 0, "Goblins: a dark, murky low sweep; the bassoon's growling low reed."),
    ("sax-lead", 0, "Echoes: a lead with delay, as the sax lead has its dotted-eighth echo."),
    ("clarinet", 0, "Sci-fi: a hollow, synthetic-sounding tone; the clarinet's odd harmonics."),
    # Ethnic
    ("oboe", 0, f"Sitar's buzzing, nasal strings, {_NOT_PLUCKED}; the oboe's nasal reed is the nearest colour."),
    ("violin", 0, f"Banjo, {_NOT_PLUCKED}; the violin's bright string tone over G3-E6."),
    ("violin", 0, f"Shamisen, {_NOT_PLUCKED}; the violin's bright string tone over G3-E6."),
    ("violin", 0, f"Koto, {_NOT_PLUCKED}; the violin's string tone over G3-E6."),
    ("flute", 0, f"Kalimba's pure tines, {_NOT_STRUCK}; the flute's pure tone in C4-A6."),
    ("oboe", 0, "Bagpipe chanter: a loud, nasal double reed, as the oboe is, in G4-A5."),
    ("violin", 0, "Fiddle: the violin model itself."),
    ("oboe", 0, "Shehnai: a high, nasal double reed, as the oboe is."),
    # Percussive
    ("flute", 0, f"Tinkle bell, {_NOT_STRUCK}; the flute's pure high tone."),
    ("muted-trumpet", 0, f"Agogo bells, {_NOT_STRUCK}; the muted trumpet's metallic, nasal attack in G3-A#5."),
    ("clarinet", 0, f"Steel drums, {_NOT_STRUCK}; the clarinet's hollow, round tone over G3-C6."),
    ("clarinet", 0, f"Woodblock, {_NOT_STRUCK}; the clarinet's quick, woody attack."),
    ("tuba", 0, f"Taiko, {_NOT_STRUCK}; the tuba's round low tone."),
    ("trombone", 0, f"Melodic toms, {_NOT_STRUCK}; the trombone's fast attack in the toms' E2-E4."),
    ("bassoon", 0, f"Synth drum, {_NOT_STRUCK}; the bassoon's buzzy low register."),
    ("flute", 0, f"Reverse cymbal, {_NOT_STRUCK}; the flute has the most breath noise to swell."),
    # Sound Effects
    ("cello", 0, "Guitar fret noise, a sound effect no factory model makes; the cello in the guitar's register."),
    ("flute", 0, "Breath noise, a sound effect no factory model makes alone; the flute has the most breath noise of any model."),
    ("flute", 0, "Seashore, a noise swell no factory model makes; the flute's breath noise comes closest."),
    ("flute", 0, "Bird tweet, a sound effect no factory model makes; the flute is the highest, most agile model."),
    ("oboe", 0, "Telephone ring, a sound effect no factory model makes; the oboe's nasal, buzzy upper register."),
    ("tuba", 0, "Helicopter, a low rumble no factory model makes; the tuba is the lowest brass."),
    ("choir-aah", 0, "Applause, a crowd noise no factory model makes; the choir is the only crowd of voices."),
    ("trumpet", 0, f"Gunshot, {_NOT_STRUCK}; the loud, fast-speaking, compressed trumpet."),
)

GM_MAP: tuple[GMChoice, ...] = tuple(
    GMChoice(program, GM_PROGRAMS[program], GM_FAMILIES[program // PROGRAMS_PER_FAMILY], preset, transpose_st, reason)
    for program, (preset, transpose_st, reason) in enumerate(_CHOICES)
)
"""The factory preset for every GM program; index = program number 0 to 127."""


def choice_for_program(program: int) -> GMChoice:
    """The map's choice for GM `program` (0 to 127, as in a Program Change); ValueError otherwise."""
    if isinstance(program, bool) or not isinstance(program, int) or not 0 <= program < len(GM_MAP):
        raise ValueError(f"GM program {program!r} is out of range; programs are 0 to 127 (a musician's 1 to 128 minus one)")
    return GM_MAP[program]
