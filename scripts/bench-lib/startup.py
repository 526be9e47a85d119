#!/usr/bin/env python3
"""Time from process start to ready, for scripts/bench.

Starts `COMMAND...` with PORT set to a free loopback port, polls
http://127.0.0.1:PORT/health/ready every millisecond (a fresh connection each time) until it
answers 200, records the elapsed time since just before the fork, stops the process with
SIGTERM (SHUTDOWN_DRAIN_SECONDS=0 makes that quick) and repeats. Prints one line:

    STARTUP median_ms=M samples_ms=a,b,c

Usage: startup.py RUNS COMMAND [ARG...]   (the environment is passed through)
"""

import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

DEADLINE_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ready(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        conn.request("GET", "/health/ready")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def one_start(command: list[str]) -> float:
    port = free_port()
    env = dict(os.environ, PORT=str(port), SHUTDOWN_DRAIN_SECONDS="0")
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            if ready(port):
                return (time.perf_counter() - started) * 1000.0
            if proc.poll() is not None:
                sys.exit(f"startup.py: {command[0]} exited with {proc.returncode} before ready")
            if time.perf_counter() - started > DEADLINE_S:
                sys.exit(f"startup.py: not ready within {DEADLINE_S:.0f} s")
            time.sleep(0.001)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    runs = int(sys.argv[1])
    samples = [one_start(sys.argv[2:]) for _ in range(runs)]
    print(
        "STARTUP median_ms=%.1f samples_ms=%s"
        % (statistics.median(samples), ",".join("%.1f" % s for s in samples))
    )


if __name__ == "__main__":
    main()
