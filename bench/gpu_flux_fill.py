"""FLUX Fill at 1024², 28 steps: bare pipeline vs end to end through the daemon, peak GPU
memory, warm submit -> first step, cancel latency in steps. Full-size random weights.

    .venv/bin/python bench/gpu_flux_fill.py [--compile] [--dtype bf16] [--repeat 3]
    .venv/bin/python bench/gpu_flux_fill.py --tiny        # CPU, tiny model: checks the script
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_inpaint import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run("flux-fill", 28, target_s=3.5,
                         reference="H100 bare eager bf16 5.38 s, compiled 4.01 s"))
