"""Build, start, check and stop the local embedded Neo4j (Bolt only).

Nothing here talks Bolt: readiness is the launcher's READY line plus an open TCP port.
When `NEO4J_URI` is set, every function here leaves the external server alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pymk.errors import ServerError
from pymk.settings import Neo4jSettings

log = logging.getLogger(__name__)

LAUNCHER_DIR = Path(__file__).resolve().parent / "neo4j_launcher"
READY_MARK = "PYMK_NEO4J_READY"
_STARTED: dict[int, subprocess.Popen] = {}   # the servers this process started and has not stopped
KEEP_ALIVE_PROBES = 2   # silent keep-alive intervals before the driver gives a connection up
# Neo4j reaches into JDK internals; these are the opens its own start scripts pass.
JVM_OPENS = (
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
)


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    uri: str
    external: bool
    detail: str


def _pid_file(cfg: Neo4jSettings) -> Path:
    return cfg.home / "launcher.pid"


def _log_file(cfg: Neo4jSettings) -> Path:
    return cfg.home / "launcher.log"


def build_launcher(force: bool = False) -> Path:
    """Compile the Java launcher with Maven (skipped when up to date). Returns its lib dir."""
    lib = LAUNCHER_DIR / "target" / "lib"
    classes = LAUNCHER_DIR / "target" / "classes" / "pymk" / "Neo4jLauncher.class"
    sources = [LAUNCHER_DIR / "pom.xml", *LAUNCHER_DIR.glob("src/**/*.java")]
    newest_src = max(p.stat().st_mtime for p in sources)
    if not force and lib.is_dir() and classes.exists() and classes.stat().st_mtime >= newest_src:
        return lib
    log.info("building the Neo4j launcher with Maven in %s", LAUNCHER_DIR)
    proc = subprocess.run(
        ["mvn", "-q", "-B", "package", "-DskipTests"],
        cwd=LAUNCHER_DIR, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise ServerError(f"maven build failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
    return lib


def _read_pid(cfg: Neo4jSettings) -> int | None:
    try:
        pid = int(_pid_file(cfg).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def status(cfg: Neo4jSettings) -> ServerStatus:
    if cfg.external:
        return ServerStatus(True, None, cfg.bolt_uri, True, "external server (NEO4J_URI); not managed here")
    pid = _read_pid(cfg)
    up = port_open(cfg.host, cfg.port)
    if pid and up:
        detail = f"running, pid {pid}, data in {cfg.home}"
    elif pid:
        detail = f"process {pid} alive but Bolt port {cfg.port} closed (starting or stuck)"
    elif up:
        detail = f"port {cfg.port} is open but not by a pymk launcher"
    else:
        detail = "stopped"
    return ServerStatus(bool(pid and up), pid, cfg.bolt_uri, False, detail)


def server_conf(cfg: Neo4jSettings) -> str:
    """The local server's settings beyond the launcher's own: Bolt keep-alive. During a query the server
    sends a no-op every `keep_alive_s`, and it hints the driver to give up on a connection silent for
    keep-alive x probes (the driver's only read timeout; Neo4j's defaults make it 120 s)."""
    return (f"server.bolt.connection_keep_alive={round(cfg.keep_alive_s * 1000)}ms\n"
            f"server.bolt.connection_keep_alive_probes={KEEP_ALIVE_PROBES}\n")


def start(cfg: Neo4jSettings, timeout_s: float = 180.0) -> ServerStatus:
    """Start the embedded server and wait until Bolt answers. A running one is reused."""
    if cfg.external:
        log.info("NEO4J_URI is set (%s): using the external server, starting nothing", cfg.uri)
        return status(cfg)
    current = status(cfg)
    if current.running:
        log.info("Neo4j already running (pid %s)", current.pid)
        return current
    if current.pid is None and port_open(cfg.host, cfg.port):
        raise ServerError(f"port {cfg.port} on {cfg.host} is taken by another process; set PYMK_NEO4J_PORT")
    lib = build_launcher()
    cfg.home.mkdir(parents=True, exist_ok=True)
    conf = cfg.home / "pymk-neo4j.conf"
    conf.write_text(server_conf(cfg))
    classpath = f"{LAUNCHER_DIR / 'target' / 'classes'}{os.pathsep}{lib}/*"
    cmd = [
        "java", f"-Xmx{cfg.heap_mb}m", f"-Xms{cfg.heap_mb}m", *JVM_OPENS,
        "-cp", classpath, "pymk.Neo4jLauncher",
        "--home", str(cfg.home), "--host", cfg.host, "--port", str(cfg.port),
        "--pagecache-mb", str(cfg.pagecache_mb), "--conf", str(conf),
    ]
    logf = _log_file(cfg)
    with open(logf, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _STARTED[proc.pid] = proc   # held, so a process that stops it later reaps it (no zombie, no warning)
    _pid_file(cfg).write_text(str(proc.pid))
    log.info("starting Neo4j (pid %d, port %d, data %s)", proc.pid, cfg.port, cfg.home)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"Neo4j exited with code {proc.returncode}; see {logf}:\n{logf.read_text()[-3000:]}")
        if READY_MARK in logf.read_text(errors="replace") and port_open(cfg.host, cfg.port):
            ready = status(cfg)
            log.info("Neo4j ready at %s", ready.uri)
            return ready
        time.sleep(0.5)
    stop(cfg)
    raise ServerError(f"Neo4j did not become ready within {timeout_s:.0f}s; see {logf}")


def stop(cfg: Neo4jSettings, timeout_s: float = 60.0) -> bool:
    """Stop the embedded server cleanly (SIGTERM, then SIGKILL). Returns whether one was running."""
    if cfg.external:
        log.info("external server (NEO4J_URI): not stopping it")
        return False
    pid = _read_pid(cfg)
    if pid is None:
        _pid_file(cfg).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _read_pid(cfg) is None or _is_zombie(pid):
            break
        time.sleep(0.3)
    else:
        log.warning("Neo4j pid %d ignored SIGTERM for %.0fs; killing it", pid, timeout_s)
        os.kill(pid, signal.SIGKILL)
    _pid_file(cfg).unlink(missing_ok=True)
    started = _STARTED.pop(pid, None)
    if started is not None:   # started by this process: reap it
        with contextlib.suppress(subprocess.TimeoutExpired):
            started.wait(timeout=10)
    log.info("Neo4j stopped (pid %d)", pid)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (FileNotFoundError, IndexError):
        return True
