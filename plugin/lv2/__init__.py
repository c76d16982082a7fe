"""LV2 plugins in the chain: a ctypes binding to liblilv (`lilv`), the host features
(`features`, `worker`), what a plugin is in timbrel's terms (`description`), the effect that
runs one (`host`), and the installed plugins by URI and short name (`catalog`)."""
