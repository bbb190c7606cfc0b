"""Starts the real nnserve binary for Python integration tests.

What: NnserveServer runs `$NNSERVE_BINARY serve` (CTest sets the variable)
on 127.0.0.1 port 0 for gRPC, metrics and REST, waits for its --port-file
("<grpc> <metrics> <http>\\n") and exposes the ports. Its output goes to a
log file whose tail is included in every failure message. stop() sends
SIGTERM (once: send_signal(SIGTERM) may have started a drain already) and
raises AssertionError unless the server exits with 0 in time.

How:
    sys.path.insert(0, os.path.join(ROOT, "tests", "util"))
    from nnserve_server import NnserveServer
    server = NnserveServer(args=["--max-message-bytes=4096"])  # started
    ... urllib to server.http_url, grpc to server.grpc_address ...
    server.stop()
or `with NnserveServer() as server: ...` (stops, and checks the exit code, on
leaving the block). Not thread-safe: one test thread drives one server.
"""

import collections
import os
import shutil
import signal
import subprocess
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = os.path.join(ROOT, "models")


def binary_path():
    """The nnserve binary named by $NNSERVE_BINARY, or RuntimeError."""
    binary = os.environ.get("NNSERVE_BINARY")
    if not binary or not os.access(binary, os.X_OK):
        raise RuntimeError(
            "NNSERVE_BINARY must name the nnserve binary (CTest sets it), "
            f"got {binary!r}")
    return binary


class NnserveServer:
    """One running `nnserve serve` process on loopback ports."""

    def __init__(self, model_repository=MODELS, args=(), env=None,
                 start_timeout=60.0):
        """Starts the server and waits until it writes its port file.

        args: extra command-line arguments (appended after the defaults, so
        they win). env: extra environment variables for the server.
        """
        self._dir = tempfile.mkdtemp(prefix="nnserve-server-")
        self.log_path = os.path.join(self._dir, "server.log")
        port_file = os.path.join(self._dir, "ports")
        command = [binary_path(), "serve",
                   f"--model-repository={model_repository}",
                   "--grpc-address=127.0.0.1:0",
                   "--metrics-address=127.0.0.1:0",
                   "--http-address=127.0.0.1:0",
                   f"--port-file={port_file}", *args]
        child_env = dict(os.environ)
        child_env.update(env or {})
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=child_env)
        self.grpc_port = self.metrics_port = self.http_port = None
        self._terminated = False  # SIGTERM sent: a second one exits at once.
        deadline = time.monotonic() + start_timeout
        # The server writes the file under another name and renames it, so
        # once it exists it is complete.
        while not os.path.exists(port_file):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"nnserve did not start (exit code {self.process.returncode}"
                    f"): {' '.join(command)}\n{self._take_log()}")
            time.sleep(0.01)
        with open(port_file, encoding="utf-8") as f:
            ports = [int(p) for p in f.read().split()]
        if len(ports) != 3:
            self.kill()
            raise RuntimeError(
                f"port file holds {ports}, expected 3 numbers\n"
                f"{self._take_log()}")
        self.grpc_port, self.metrics_port = ports[0], ports[1]
        self.http_port = ports[2]

    @property
    def grpc_address(self):
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self):
        """Base URL of the REST binding, e.g. http://127.0.0.1:41234."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self):
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def log_tail(self, lines=40):
        """The last lines of the server's output, for failure messages."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                tail = collections.deque(f, maxlen=lines)
        except OSError as error:
            return f"(no server log: {error})"
        return "--- nnserve log (tail) ---\n" + "".join(tail)

    def send_signal(self, sig):
        """E.g. SIGTERM to start a drain; stop() then only waits."""
        self._terminated |= sig == signal.SIGTERM
        self.process.send_signal(sig)

    def wait(self, timeout):
        """Waits for the process to exit; returns its exit code."""
        return self.process.wait(timeout=timeout)

    def stop(self, timeout=30.0):
        """SIGTERM (unless sent already: a second one makes nnserve exit at
        once), then AssertionError unless the exit code is 0 in time."""
        if self.process.poll() is None and not self._terminated:
            self.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"nnserve did not exit within {timeout} s of SIGTERM\n"
                f"{self._take_log()}")
        tail = self._take_log()
        if code != 0:
            raise AssertionError(
                f"nnserve exited with {code} after SIGTERM\n{tail}")

    def kill(self):
        """Ends the process at once (for error paths); checks nothing."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def _take_log(self):
        # The log tail, then the temporary directory is removed.
        tail = self.log_tail()
        shutil.rmtree(self._dir, ignore_errors=True)
        return tail

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
