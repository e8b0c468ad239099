"""`make demo` in a terminal: its progress bar redraws from a thread while the functions' output is redirected
to their logs, and neither may end up in the other."""

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def run_in_terminal(command: list[str], columns: int, rows: int = 24) -> tuple[int, str]:
    """Run ``command`` on a pseudo-terminal of that size; its exit status and everything it drew."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "CI")}
    process = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env | {"TERM": "xterm-256color"}
    )
    os.close(slave)
    drawn = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    return process.wait(timeout=60), drawn.decode(errors="replace")


def test_the_demo_in_a_small_terminal_draws_its_bar_and_logs_only_json(cdk_out, tmp_path):
    # Given a terminal of 80 columns, when the demo runs in it
    command = [sys.executable, "-m", "nextbest_cli.main", "demo", "--customers", "60", "--days", "2"]
    code, drawn = run_in_terminal([*command, "--out", str(tmp_path), "--cdk-out", str(cdk_out)], columns=80)
    # Then it finishes, having drawn its bar on the terminal and its summary within the terminal's width
    text = ANSI.sub("", drawn)
    assert code == 0, text[-3000:]
    assert "simulated " in text and " events" in text
    summary = text[text.index("nextbest demo:") :]
    assert all(len(line) <= 80 for line in summary.splitlines()), summary
    assert f"{tmp_path}/report.html" in summary.replace("\n", "")  # a long path wraps, never past the edge
    assert "Traceback" not in text
    # And every line the functions wrote is a JSON log record or EMF metric: no bar text inside
    logs = list((tmp_path / "logs").glob("*.log"))
    assert len(logs) == 6  # a log per function
    for log in logs:
        for line in log.read_text().splitlines():
            json.loads(line)
    assert json.loads((tmp_path / "summary.json").read_text())["events_ingested"] > 0
