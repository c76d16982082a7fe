"""Benchmark reporting: a table on stdout and a JSON record in bench/results/."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the figures were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def report(name: str, rows: list[dict], **meta) -> Path:
    """Print `rows` as an aligned table and write them, with `meta` and the machine, as JSON."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{name}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"name": name, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **meta, "rows": rows}
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {path.relative_to(RESULTS.parent.parent)}")
    return path


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
