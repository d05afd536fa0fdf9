"""Run a TUI in a pseudo-terminal and measure it from outside: first paint, CPU, peak RSS."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from dataclasses import dataclass, field


@dataclass
class PtyProcess:
    argv: list[str]
    cols: int = 100
    rows: int = 30
    env: dict[str, str] = field(default_factory=dict)
    pid: int = 0
    fd: int = 0
    output: bytearray = field(default_factory=bytearray)

    def start(self) -> float:
        pid, fd = pty.fork()
        if pid == 0:  # child
            env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(self.cols), LINES=str(self.rows), **self.env)
            os.execvpe(self.argv[0], self.argv, env)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", self.rows, self.cols, 0, 0))
        return time.perf_counter()

    def pump(self, seconds: float) -> None:
        """Read (and keep) whatever the program writes for ``seconds``; a TUI blocks if nobody reads."""
        deadline = time.perf_counter() + seconds
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.05))
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return
                self.output.extend(chunk)
                if len(self.output) > 4_000_000:
                    del self.output[:-1_000_000]

    def wait_for(self, marker: bytes, timeout: float) -> float | None:
        """Seconds until ``marker`` appears in the output, or None."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if marker in self.output:
                return time.perf_counter() - start
            self.pump(0.01)
        return None

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def cpu_seconds(self) -> float:
        """utime + stime of the process and its reaped children, in seconds."""
        with open(f"/proc/{self.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
        return ticks / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
            for _ in range(50):
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    break
                self.pump(0.05)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)
