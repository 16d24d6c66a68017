"""How long closing a client takes, in the plug-in's own interpreter, when the daemon is
alive, frozen (SIGSTOP) or dead, with a 64 MB layer sent just before. Measured in this run.

    .venv/bin/python bench/client_close.py [--repeat 5]

Target: close returns within 0.5 s in every case (the host must never hang on it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.daemon_process import start_daemon  # noqa: E402

TARGET_S = 0.5
HOST = """
import json, sys, time
from sfumato.bridge.client import Client, ClientError
from sfumato.bridge.raster import Layout, Raster
client = Client(sys.argv[1], timeout_s=1.0, reconnects=0)
layer = Raster(4096, 4096, Layout.RGBA8, bytes(4096 * 4096 * 4))
try:
    client.ping([layer])
except ClientError:
    pass
started = time.perf_counter()
client.close()
closed = time.perf_counter() - started
print(json.dumps({"close_s": closed}))
"""


def close_times(endpoint: str, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        env = {**os.environ, "SFUMATO_SHARED_MEMORY": "0"}
        done = subprocess.run([sys.executable, "-c", HOST, endpoint], capture_output=True,
                              text=True, timeout=60, env=env, check=True)
        out.append(json.loads(done.stdout)["close_s"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        daemon = start_daemon(Path(folder) / "home")
        try:
            results["live daemon"] = close_times(daemon.endpoint, args.repeat)
            os.kill(daemon.process.pid, signal.SIGSTOP)
            try:
                results["frozen daemon"] = close_times(daemon.endpoint, args.repeat)
            finally:
                os.kill(daemon.process.pid, signal.SIGCONT)
            os.killpg(daemon.process.pid, signal.SIGKILL)
            daemon.process.wait()
            results["dead daemon"] = close_times(daemon.endpoint, args.repeat)
        finally:
            daemon.stop()
    worst = 0.0
    for name, samples in results.items():
        worst = max(worst, max(samples))
        print(f"{name:<14} close: max {max(samples) * 1e3:7.2f} ms, "
              f"min {min(samples) * 1e3:7.2f} ms over {len(samples)}")
    print(f"target: close < {TARGET_S * 1e3:.0f} ms: {'met' if worst < TARGET_S else 'NOT met'}")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
