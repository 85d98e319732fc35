"""Start-up benchmark: how long `python app.py` takes to serve its page, against a bare Gradio app
started the same way in the same run. Target: the studio page is served within 10 s.

    .venv/bin/python bench/startup.py [--runs 3]

Last line: `ratio: X.XX` (studio / bare Gradio, median of the runs).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BARE = "import gradio as gr\nwith gr.Blocks() as demo:\n    gr.Markdown('hello')\ndemo.launch()\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_to_page(args: list[str], home: Path) -> float:
    port = free_port()
    env = {**os.environ, "STUDIO_HOME": str(home), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False"}
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
            if time.perf_counter() - start > 120:
                raise RuntimeError("no page within 120 s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        bare_script = Path(tmp) / "bare_app.py"
        bare_script.write_text(BARE)
        bare, studio = [], []
        for i in range(runs):  # interleaved, so machine noise hits both alike
            bare.append(time_to_page([sys.executable, str(bare_script)], Path(tmp) / f"b{i}"))
            studio.append(time_to_page([sys.executable, str(ROOT / "app.py")], Path(tmp) / f"s{i}"))
    b, s = statistics.median(bare), statistics.median(studio)
    print(f"bare gradio app: median {b:.2f} s over {runs} runs ({', '.join(f'{x:.2f}' for x in bare)})")
    print(f"seed studio app: median {s:.2f} s over {runs} runs ({', '.join(f'{x:.2f}' for x in studio)})")
    print(f"target: studio page within 10 s -> {'met' if s <= 10 else 'MISSED'}")
    print(f"ratio: {s / b:.2f}")


if __name__ == "__main__":
    main()
