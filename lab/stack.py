"""Launch the whole restartguard loop locally: simulated trader → exporter → Prometheus →
Alertmanager(s) → receiver → Discord. Used by the end-to-end test and by ``restartguard demo``.

Every configuration is rendered from the files the project ships, with only what must differ
on a developer machine overridden:

* ``restartguard.yml`` from ``restartguard.example.yml``: file paths (log, journal JSON,
  pidfile, state directories, unit directory, trader config), listen addresses and timings;
* ``prometheus.yml`` from ``prometheus/prometheus.yml``: target addresses, scrape/evaluation
  intervals, and ``rule_files`` pointing at the shipped ``prometheus/rules.yml`` (unchanged);
* ``alertmanager.yml`` from the shipped ``alertmanager.yml``: loaded and edited key by key —
  webhook/Discord URLs, the receiver's bearer-token ``credentials_file``, and the route tree's
  ``group_wait``/``group_interval``/``repeat_interval``.

Processes run in their own process groups on loopback; ports are the OS's (port 0) where a
program can report what it bound, else picked free by binding port 0 first. Readiness is
polled over HTTP with a deadline. :meth:`Stack.stop` ends every process group it started.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import xxhash
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lab import simtrader
from lab.fake_systemctl import FakeSystemctl
from restartguard.config import settings_from_mapping
from restartguard.durations import parse_duration
from restartguard.errors import RestartguardError, SourceError, UsageError
from restartguard.promhttp import PrometheusClient

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = ROOT / "restartguard.example.yml"
SHIPPED_RULES = ROOT / "prometheus" / "rules.yml"
SHIPPED_PROMETHEUS = ROOT / "prometheus" / "prometheus.yml"
SHIPPED_ALERTMANAGER = ROOT / "alertmanager.yml"
TOOLS_BIN = ROOT / ".tools" / "usr" / "bin"

BIND_ERROR = "address already in use"
EXPORTER_JOB = "restartguard-exporter"
RECEIVER_JOB = "restartguard-receiver"
UNIT_FILE = """\
[Unit]
Description={description}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=trader
WorkingDirectory=/opt/trader
ExecStart=/opt/trader/venv/bin/python3 /opt/trader/trader.py
Restart=on-failure
RestartSec=10
MemoryMax=1G
TimeoutStopSec=90

[Install]
WantedBy=multi-user.target
"""
TRADER_CONFIG = """\
# The simulated trader's own configuration (edited by restartguard's api_timeout fix).
exchange: bitget
symbols: [BTCUSDT, ETHUSDT]
api_timeout: 10
api_retries: 3
"""

SECRET_ENV = (
    "RESTARTGUARD_TOKEN",
    "RESTARTGUARD_TOKEN_FILE",
    "RESTARTGUARD_DISCORD_WEBHOOK_URL",
    "RESTARTGUARD_DISCORD_WEBHOOK_URL_FILE",
)
T = TypeVar("T")


class StackError(RestartguardError):
    """A component of the local stack could not be started or did not become ready."""


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------


@dataclass
class StackOptions:
    unit: str = "bitget-bot.service"
    description: str = "Bitget futures bot"
    alertmanagers: int = 2  # >1: an HA cluster gossiping on loopback
    # Prometheus (the rules file sets its own group intervals; see prometheus/rules.yml)
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    # Alertmanager route timings
    group_wait: str = "1s"
    group_interval: str = "2s"
    repeat_interval: str = "1h"
    peer_timeout: str = "3s"
    gossip_interval: str = "100ms"
    # restartguard timings
    settle_seconds: float = 2.0
    exporter_poll_seconds: float = 0.5
    receiver_poll_seconds: float = 0.2
    verify_timeout_seconds: float = 15.0
    # the simulated trader
    restart_sec: float = 0.5
    stop_timeout: float = 1.0
    check_interval: float = 0.5
    crash_every: float | None = None
    causes: tuple[str, ...] = simtrader.CRASH_CAUSES
    log_tz: str = "UTC"
    # Discord: the webhook the receiver (and Alertmanager's direct Discord routes) post to
    discord_webhook_url: str | None = None
    language: str | None = None  # receiver.language and report.language (None: the shipped default)
    receiver_extra_env: dict[str, str] = field(default_factory=dict)
    startup_timeout: float = 60.0


# ----------------------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------------------


class ManagedProcess:
    """A child process in its own session/process group, output to a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], *, log_path: Path, env: Mapping[str, str], cwd: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env)
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after ``timeout``; reaps the leader."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (the leader, or children that outlived it) is killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def free_port(*, udp_too: bool = False) -> int:
    """A loopback port free now (for programs that cannot report a port-0 bind)."""
    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        port = int(tcp.getsockname()[1])
        if not udp_too:
            tcp.close()
            return port
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
        return port
    raise StackError("no free loopback port found")


def find_binary(*names: str) -> str:
    path = os.pathsep.join([str(TOOLS_BIN), os.environ.get("PATH", "")])
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return found
    raise StackError(f"{' or '.join(names)} not found on PATH or in {TOOLS_BIN} (run scripts/fetch-tools.sh)")


DEBIAN_AM_SHARE = b"/usr/share/prometheus/alertmanager"


def relocatable_alertmanager(binary: str, workdir: Path) -> str:
    """Debian's Alertmanager reads its default templates from the hard-coded
    ``/usr/share/prometheus/alertmanager``; unpacked into ``.tools`` (not installed) it fails
    with "failed to parse templates". Unless that directory exists, use a copy of the binary
    whose path is made relative (``.usr/share/...``, same length) and run it in ``workdir``,
    where a symlink points at the templates next to the binary. Returns the program to run."""
    if Path(DEBIAN_AM_SHARE.decode(), "default.tmpl").is_file():
        return binary
    data = Path(binary).read_bytes()
    if DEBIAN_AM_SHARE not in data:
        return binary  # an upstream build: templates are compiled in
    share = Path(binary).resolve().parents[1] / "share" / "prometheus" / "alertmanager"
    if not (share / "default.tmpl").is_file():
        raise StackError(f"Alertmanager templates not found in {share}")
    relative = b"." + DEBIAN_AM_SHARE[1:]
    link = workdir / relative.decode()
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(share, target_is_directory=True)
    copy_path = workdir / "alertmanager-relocated"
    copy_path.write_bytes(data.replace(DEBIAN_AM_SHARE, relative))
    copy_path.chmod(0o755)
    return str(copy_path)


def parse_duration_seconds(text: str) -> float:
    """A Prometheus duration (``1m``, ``90s``, ``1h30m``, ``500ms``) in seconds."""
    try:
        return parse_duration(text).total_seconds()
    except UsageError as exc:
        raise StackError(str(exc)) from None


def rule_group_slot(rules_file: Path | str, group: str, interval_seconds: float) -> float:
    """Where in each interval Prometheus 2.x evaluates a rule group (seconds after a multiple of
    the interval since the epoch): the hash of the group's {file, name} modulo the interval
    ("consistently slotted" evaluation, rules/manager.go). Used only to schedule a test or demo
    around an evaluation; correctness never depends on it."""
    key = b"file\xff" + str(rules_file).encode() + b"\xffname\xff" + group.encode() + b"\xff"
    interval_ns = round(interval_seconds * 1e9)
    return (xxhash.xxh64_intdigest(key) % interval_ns) / 1e9


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    watch: Sequence[ManagedProcess] = (),
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with the logs of ``watch`` if one
    of them died or the deadline passed."""
    deadline = time.monotonic() + timeout
    last_error: str = ""
    while True:
        try:
            value = probe()
            if value:
                return value
        except (requests.RequestException, OSError, ValueError, KeyError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        for proc in watch:
            if not proc.alive():
                raise StackError(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
        if time.monotonic() >= deadline:
            logs = "\n".join(f"--- {p.name} ---\n{p.tail(15)}" for p in watch)
            raise StackError(f"timed out after {timeout:g}s waiting for {what} {last_error}\n{logs}".rstrip())
        time.sleep(interval)


def _http_ok(url: str, *, headers: Mapping[str, str] | None = None) -> bool:
    resp = requests.get(url, timeout=2, headers=dict(headers or {}))
    return resp.status_code == 200


# ----------------------------------------------------------------------------------------------
# Rendering the shipped configuration files
# ----------------------------------------------------------------------------------------------


def _load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise StackError(f"{path}: expected a YAML mapping")
    return data


def render_restartguard_config(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The shipped example with ``overrides`` merged in (nested mappings merged key by key)."""

    def merge(dst: dict[str, Any], src: Mapping[str, Any]) -> None:
        for key, value in src.items():
            if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
                merge(dst[key], value)
            else:
                dst[key] = copy.deepcopy(value)

    out = copy.deepcopy(dict(base))
    merge(out, overrides)
    return out


def render_prometheus_config(
    base: Mapping[str, Any] | None,
    *,
    rules: Path,
    targets: Mapping[str, Sequence[str]],
    alertmanagers: Sequence[str],
    scrape_interval: str,
    evaluation_interval: str,
    token_file: Path | None = None,
) -> dict[str, Any]:
    """The shipped prometheus.yml with targets, rule file, intervals and the receiver's token
    file replaced.

    ``targets`` maps job name → ``host:port`` list; jobs of the shipped file that are not in it
    are dropped (nothing to scrape here). Jobs in ``targets`` missing from the file are added.
    """
    cfg: dict[str, Any] = copy.deepcopy(dict(base)) if base else {}
    glob = cfg.get("global") or {}
    cfg["global"] = glob
    glob["scrape_interval"] = scrape_interval
    glob["evaluation_interval"] = evaluation_interval
    glob["scrape_timeout"] = scrape_interval
    cfg["rule_files"] = [str(rules)]
    jobs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for job in cfg.get("scrape_configs") or []:
        name = str(job.get("job_name"))
        if name not in targets:
            continue
        job = dict(job)
        for key in ("scrape_interval", "scrape_timeout"):
            if key in job:
                job[key] = scrape_interval
        for key in ("file_sd_configs", "dns_sd_configs", "consul_sd_configs", "http_sd_configs"):
            job.pop(key, None)
        auth = job.get("authorization")
        if isinstance(auth, dict) and token_file is not None and "credentials_file" in auth:
            job["authorization"] = {**auth, "credentials_file": str(token_file)}
        static = job.get("static_configs") or [{}]
        labels = dict((static[0] or {}).get("labels") or {})
        entry: dict[str, Any] = {"targets": list(targets[name])}
        if labels:
            entry["labels"] = labels
        job["static_configs"] = [entry]
        jobs.append(job)
        seen.add(name)
    for name, addrs in targets.items():
        if name not in seen:
            jobs.append({"job_name": name, "static_configs": [{"targets": list(addrs)}]})
    cfg["scrape_configs"] = jobs
    alerting = cfg.get("alerting") or {}
    cfg["alerting"] = alerting
    ams = alerting.get("alertmanagers") or [{}]
    first = dict(ams[0] or {})
    for key in ("file_sd_configs", "dns_sd_configs"):
        first.pop(key, None)
    first["static_configs"] = [{"targets": list(alertmanagers)}]
    alerting["alertmanagers"] = [first]
    return cfg


def _walk_routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes") or []:
        if isinstance(child, dict):
            yield from _walk_routes(child)


def render_alertmanager_config(
    base: Mapping[str, Any],
    *,
    receiver_url: str,
    token_file: Path,
    discord_url: str | None,
    group_wait: str,
    group_interval: str,
    repeat_interval: str,
) -> dict[str, Any]:
    """The shipped alertmanager.yml, edited key by key: the receiver's webhook URL (same path,
    new host:port), its bearer-token file, Discord webhook URLs, and route timings. Routing
    (matchers, grouping, inhibition, continue) is left exactly as shipped."""
    cfg: dict[str, Any] = copy.deepcopy(dict(base))
    root = cfg.get("route")
    if not isinstance(root, dict):
        raise StackError("alertmanager.yml has no route")
    timings = {"group_wait": group_wait, "group_interval": group_interval, "repeat_interval": repeat_interval}
    for route in _walk_routes(root):
        for key, value in timings.items():
            if route is root or key in route:
                route[key] = value
    new = urlsplit(receiver_url)
    for receiver in cfg.get("receivers") or []:
        for hook in receiver.get("webhook_configs") or []:
            old = urlsplit(str(hook.get("url", "")))
            hook["url"] = f"{new.scheme}://{new.netloc}{old.path or '/alerts'}"
            http = hook.setdefault("http_config", {}) or {}
            hook["http_config"] = http
            auth = http.get("authorization")
            if isinstance(auth, dict):
                auth.pop("credentials", None)
                auth["credentials_file"] = str(token_file)
            elif "bearer_token_file" in http or "bearer_token" in http:
                http.pop("bearer_token", None)
                http["bearer_token_file"] = str(token_file)
            else:
                http["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
        for disc in receiver.get("discord_configs") or []:
            disc.pop("webhook_url_file", None)
            disc["webhook_url"] = discord_url or "http://127.0.0.1:9/discord-not-configured"
    return cfg


# ----------------------------------------------------------------------------------------------
# The stack
# ----------------------------------------------------------------------------------------------


@dataclass
class AlertmanagerNode:
    process: ManagedProcess
    port: int
    cluster_port: int | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Stack:
    """The local loop. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, root: Path | None = None, options: StackOptions | None = None) -> None:
        self.opts = options or StackOptions()
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="restartguard-stack-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        r = self.root
        self.paths = {
            "trader_log": r / "trader" / "trader-v2.log",
            "journal": r / "trader" / "journal.json",
            "pidfile": r / "trader" / "trader.pid",
            "control": r / "trader" / "control",
            "trader_config": r / "trader" / "config.yml",
            "unit_dir": r / "systemd",
            "bin": r / "bin",
            "token": r / "secrets" / "receiver-token",
            "config": r / "restartguard.yml",
            "exporter_state": r / "exporter",
            "receiver_state": r / "receiver",
            "spool": r / "spool",
            "actuator_state": r / "actuator",
            "reports": r / "reports",
            "prometheus_yml": r / "prometheus" / "prometheus.yml",
            "prometheus_data": r / "prometheus" / "data",
            "logs": r / "logs",
        }
        self.token = secrets.token_urlsafe(24)
        self.processes: list[ManagedProcess] = []
        self.trader: ManagedProcess | None = None
        self.exporter: ManagedProcess | None = None
        self.receiver: ManagedProcess | None = None
        self.actuator: ManagedProcess | None = None
        self.prometheus: ManagedProcess | None = None
        self.alertmanagers: list[AlertmanagerNode] = []
        self.exporter_addr = ""
        self.receiver_addr = ""
        self.prometheus_port = 0
        self.settings_doc: dict[str, Any] = {}

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Stack:
        self._prepare()
        self.start_trader()
        self.start_exporter()
        self.start_actuator()
        self.start_receiver()
        # Both take seconds to be ready (cluster gossip settling, the first scrapes): in parallel.
        # Their ports are picked free beforehand; another program may take one in between: retry.
        for attempt in range(3):
            try:
                self.start_alertmanagers(wait=False)
                self.start_prometheus(wait=False)
                self.wait_alertmanagers()
                self.wait_prometheus()
                return self
            except StackError:
                started = [a.process for a in self.alertmanagers] + [p for p in [self.prometheus] if p]
                if attempt == 2 or not any(BIND_ERROR in p.tail(200) for p in started):
                    raise
                for proc in started:
                    proc.stop()
                    self.processes.remove(proc)
                self.alertmanagers, self.prometheus = [], None
                shutil.rmtree(self.root / "alertmanager", ignore_errors=True)
        return self

    def stop(self) -> None:
        """Stop everything this stack started, last started first."""
        for proc in reversed(self.processes):
            proc.stop()
        (self.root / "alertmanager" / "alertmanager-relocated").unlink(missing_ok=True)
        if self._own_root and os.environ.get("RESTARTGUARD_KEEP_STACK") != "1":
            shutil.rmtree(self.root, ignore_errors=True)

    def _spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        unset: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> ManagedProcess:
        full = {k: v for k, v in os.environ.items() if k not in unset}
        full.update(env or {})
        # The lab is not installed: its modules (lab.simtrader, the systemctl shim) load from the checkout.
        full["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), full.get("PYTHONPATH", "")) if p)
        proc = ManagedProcess(
            name, argv, log_path=self.paths["logs"] / f"{name}.log", env=full, cwd=cwd or self.root
        )
        self.processes.append(proc)  # registered before it runs: stop() never misses it
        return proc.start()

    # -- files --------------------------------------------------------------------------------
    def _prepare(self) -> None:
        p = self.paths
        for key in (
            "unit_dir",
            "bin",
            "exporter_state",
            "receiver_state",
            "spool",
            "reports",
            "prometheus_data",
            "logs",
        ):
            p[key].mkdir(parents=True, exist_ok=True)
        for key in ("trader_log", "token", "prometheus_yml"):
            p[key].parent.mkdir(parents=True, exist_ok=True)
        p["control"].mkdir(parents=True, exist_ok=True)
        p["token"].write_text(self.token + "\n", encoding="utf-8")
        p["token"].chmod(0o600)
        (p["unit_dir"] / self.opts.unit).write_text(
            UNIT_FILE.format(description=self.opts.description), encoding="utf-8"
        )
        p["trader_config"].write_text(TRADER_CONFIG, encoding="utf-8")
        p["journal"].touch()
        p["trader_log"].touch()
        self.systemctl = FakeSystemctl(
            p["control"], unit=self.opts.unit, unit_dir=p["unit_dir"], bin_dir=p["bin"], control=p["control"]
        )
        self.write_restartguard_config()

    def write_restartguard_config(self) -> Path:
        p, o = self.paths, self.opts
        base = _load_yaml(SHIPPED_CONFIG) if SHIPPED_CONFIG.is_file() else {}
        overrides: dict[str, Any] = {
            "unit": o.unit,
            "log": {
                "paths": [str(p["trader_log"])],
                "timezone": "UTC" if o.log_tz.upper() == "UTC" else None,
            },
            "journal": {"enabled": True, "json_file": str(p["journal"])},
            "process": {"pidfile": str(p["pidfile"]), "data_dir": str(self.root)},
            "exporter": {
                "listen": "127.0.0.1:0",
                "state_dir": str(p["exporter_state"]),
                "settle_seconds": o.settle_seconds,
                "poll_interval_seconds": o.exporter_poll_seconds,
            },
            "receiver": {
                "listen": "127.0.0.1:0",
                "state_dir": str(p["receiver_state"]),
                "unit_dir": str(p["unit_dir"]),
                "spool_dir": str(p["spool"]),
                "actuator_state_dir": str(p["actuator_state"]),
                "trader_config": {"path": str(p["trader_config"])},
                "poll_interval_seconds": o.receiver_poll_seconds,
                "verify_timeout_seconds": o.verify_timeout_seconds,
            },
        }
        if "report" in base or SHIPPED_CONFIG.is_file():
            overrides["report"] = {"out_dir": str(p["reports"])}
        if o.language is not None:
            overrides["receiver"]["language"] = o.language
            overrides.setdefault("report", {})["language"] = o.language
        doc = render_restartguard_config(base, overrides)
        if doc.get("log", {}).get("timezone") is None:
            doc["log"].pop("timezone", None)
        settings_from_mapping(doc)  # fail here, with the key, if the rendering is invalid
        self.settings_doc = doc
        p["config"].write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return p["config"]

    # -- components ---------------------------------------------------------------------------
    def start_trader(self) -> None:
        p, o = self.paths, self.opts
        argv = [
            sys.executable,
            "-m",
            "lab.simtrader",
            "run",
            "--unit",
            o.unit,
            "--description",
            o.description,
            "--journal-json",
            str(p["journal"]),
            "--log",
            str(p["trader_log"]),
            "--pidfile",
            str(p["pidfile"]),
            "--control",
            str(p["control"]),
            "--trader-config",
            str(p["trader_config"]),
            "--unit-dir",
            str(p["unit_dir"]),
            "--restart-sec",
            str(o.restart_sec),
            "--stop-timeout",
            str(o.stop_timeout),
            "--check-interval",
            str(o.check_interval),
            "--log-tz",
            o.log_tz,
            "--causes",
            ",".join(o.causes),
        ]
        if o.crash_every:
            argv += ["--crash-every", str(o.crash_every)]
        self.trader = self._spawn("simtrader", argv)

        def up() -> bool:
            st = simtrader.status(p["control"])
            return (
                st.get("ActiveState") == "active"
                and p["pidfile"].is_file()
                and "Bot booting" in (p["trader_log"].read_text(encoding="utf-8", errors="replace"))
            )

        self._await("the simulated trader", up, self.trader)

    def _await(self, what: str, probe: Callable[[], T | None], *watch: ManagedProcess) -> T:
        """wait_until with the stack's start-up timeout, failing early when a watched process dies."""
        return wait_until(what, probe, timeout=self.opts.startup_timeout, watch=watch)

    def _await_http(self, what: str, url: str, process: ManagedProcess) -> None:
        """Wait until `url` answers 2xx (started by `process`)."""
        self._await(what, lambda: _http_ok(url), process)

    def _restartguard(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "restartguard_cli.main", *args]

    def _env_path(self) -> str:
        return os.pathsep.join([str(self.paths["bin"]), str(TOOLS_BIN), os.environ.get("PATH", "")])

    def start_exporter(self) -> None:
        p = self.paths
        self.exporter = self._spawn(
            "exporter",
            self._restartguard("exporter", "--config", str(p["config"])),
            env={"PATH": self._env_path()},
        )
        pattern = re.compile(r"serving /metrics on http://([0-9.]+:\d+)/metrics")
        exporter = self.exporter

        def addr() -> str | None:
            m = pattern.search(exporter.tail(200))
            return m.group(1) if m else None

        self.exporter_addr = self._await("the exporter's address", addr, exporter)
        self._await_http("the exporter's /metrics", f"{self.exporter_url}/metrics", exporter)

    def start_actuator(self) -> None:
        """What restartguard-actuator.path does on a host: `restartguard apply` per spooled request
        (here unprivileged, against the stack's unit directory and its fake systemctl)."""
        p = self.paths
        self.actuator = self._spawn(
            "actuator",
            [
                sys.executable,
                "-m",
                "lab.spool_watcher",
                "--spool",
                str(p["spool"]),
                "--config",
                str(p["config"]),
            ],
            env={"PATH": self._env_path()},
            unset=list(SECRET_ENV),
        )
        actuator = self.actuator
        self._await("the actuator's spool watcher", lambda: "watching" in actuator.tail(20), actuator)

    def start_receiver(self) -> None:
        p = self.paths
        env = {
            "PATH": self._env_path(),
            "RESTARTGUARD_TOKEN_FILE": str(p["token"]),
            **self.opts.receiver_extra_env,
        }
        if self.opts.discord_webhook_url:
            env["RESTARTGUARD_DISCORD_WEBHOOK_URL"] = self.opts.discord_webhook_url
        addr_file = p["receiver_state"] / "receiver.addr"
        addr_file.unlink(missing_ok=True)
        self.receiver = self._spawn(
            "receiver",
            self._restartguard("receiver", "--config", str(p["config"])),
            env=env,
            # Secrets of the developer's own environment never reach the local stack.
            unset=[k for k in SECRET_ENV if k not in env],
        )
        receiver = self.receiver

        def addr() -> str | None:
            text = addr_file.read_text(encoding="utf-8").strip() if addr_file.is_file() else ""
            return text or None

        self.receiver_addr = self._await("the receiver's address", addr, receiver)
        self._await_http("the receiver's /healthz", f"{self.receiver_url}/healthz", receiver)

    def alertmanager_config(self) -> dict[str, Any]:
        if not SHIPPED_ALERTMANAGER.is_file():
            raise StackError(f"the shipped Alertmanager configuration {SHIPPED_ALERTMANAGER} is missing")
        return render_alertmanager_config(
            _load_yaml(SHIPPED_ALERTMANAGER),
            receiver_url=self.receiver_url,
            token_file=self.paths["token"],
            discord_url=self.opts.discord_webhook_url,
            group_wait=self.opts.group_wait,
            group_interval=self.opts.group_interval,
            repeat_interval=self.opts.repeat_interval,
        )

    def start_alertmanagers(self, *, wait: bool = True) -> None:
        workdir = self.root / "alertmanager"
        workdir.mkdir(parents=True, exist_ok=True)
        binary = relocatable_alertmanager(find_binary("prometheus-alertmanager", "alertmanager"), workdir)
        n = max(1, self.opts.alertmanagers)
        cfg_path = workdir / "alertmanager.yml"
        cfg_path.write_text(yaml.safe_dump(self.alertmanager_config(), sort_keys=False, allow_unicode=True))
        ports = [free_port() for _ in range(n)]
        cluster_ports = [free_port(udp_too=True) for _ in range(n)] if n > 1 else []
        for i in range(n):
            data = self.root / "alertmanager" / f"data{i}"
            data.mkdir(parents=True, exist_ok=True)
            argv = [
                binary,
                f"--config.file={cfg_path}",
                f"--storage.path={data}",
                f"--web.listen-address=127.0.0.1:{ports[i]}",
                f"--web.external-url=http://127.0.0.1:{ports[i]}",
                "--log.level=info",
            ]
            if cluster_ports:
                argv += [
                    f"--cluster.listen-address=127.0.0.1:{cluster_ports[i]}",
                    f"--cluster.advertise-address=127.0.0.1:{cluster_ports[i]}",
                    f"--cluster.peer-timeout={self.opts.peer_timeout}",
                    f"--cluster.gossip-interval={self.opts.gossip_interval}",
                    "--cluster.reconnect-interval=1s",
                ]
                argv += [f"--cluster.peer=127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i]
            else:
                argv.append("--cluster.listen-address=")
            proc = self._spawn(f"alertmanager{i}", argv, cwd=workdir)
            self.alertmanagers.append(
                AlertmanagerNode(proc, ports[i], cluster_ports[i] if cluster_ports else None)
            )
        if wait:
            self.wait_alertmanagers()

    def wait_alertmanagers(self) -> None:
        n = len(self.alertmanagers)
        for node in self.alertmanagers:
            self._await_http(f"{node.process.name} /-/ready", f"{node.url}/-/ready", node.process)
        if n > 1:

            def clustered() -> bool:
                for node in self.alertmanagers:
                    status = requests.get(f"{node.url}/api/v2/status", timeout=2).json()
                    peers = (status.get("cluster") or {}).get("peers") or []
                    if len(peers) < n or (status.get("cluster") or {}).get("status") != "ready":
                        return False
                return True

            self._await(
                "the Alertmanager cluster to form", clustered, *(a.process for a in self.alertmanagers)
            )

    def start_prometheus(self, *, wait: bool = True) -> None:
        binary = find_binary("prometheus")
        self.prometheus_port = free_port()
        base = _load_yaml(SHIPPED_PROMETHEUS) if SHIPPED_PROMETHEUS.is_file() else None
        cfg = render_prometheus_config(
            base,
            rules=SHIPPED_RULES,
            targets={
                EXPORTER_JOB: [self.exporter_addr],
                RECEIVER_JOB: [self.receiver_addr],
                "prometheus": [f"127.0.0.1:{self.prometheus_port}"],
                "alertmanager": [f"127.0.0.1:{a.port}" for a in self.alertmanagers],
            },
            alertmanagers=[f"127.0.0.1:{a.port}" for a in self.alertmanagers],
            scrape_interval=self.opts.scrape_interval,
            evaluation_interval=self.opts.evaluation_interval,
            token_file=self.paths["token"],
        )
        self.paths["prometheus_yml"].write_text(yaml.safe_dump(cfg, sort_keys=False))
        argv = [
            binary,
            f"--config.file={self.paths['prometheus_yml']}",
            f"--storage.tsdb.path={self.paths['prometheus_data']}",
            "--storage.tsdb.retention.time=35d",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
            f"--web.external-url={self.prometheus_url}",
            "--log.level=info",
        ]
        self.prometheus = self._spawn("prometheus", argv)
        if wait:
            self.wait_prometheus()

    def wait_prometheus(self) -> None:
        assert self.prometheus is not None
        prom = self.prometheus
        self._await_http("Prometheus /-/ready", f"{self.prometheus_url}/-/ready", prom)

        def scraped() -> bool:
            targets = requests.get(f"{self.prometheus_url}/api/v1/targets", timeout=2).json()["data"]
            health = {t["labels"].get("job"): t["health"] for t in targets["activeTargets"]}
            return health.get(EXPORTER_JOB) == "up" and health.get(RECEIVER_JOB) == "up"

        self._await("Prometheus to scrape the exporter and the receiver", scraped, prom)

    # -- addresses ----------------------------------------------------------------------------
    @property
    def exporter_url(self) -> str:
        return f"http://{self.exporter_addr}"

    @property
    def receiver_url(self) -> str:
        return f"http://{self.receiver_addr}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def urls(self) -> dict[str, str]:
        out = {
            "prometheus": self.prometheus_url,
            "exporter": f"{self.exporter_url}/metrics",
            "receiver": self.receiver_url,
        }
        for i, am in enumerate(self.alertmanagers):
            out[f"alertmanager{i}"] = am.url
        return out

    # -- helpers for tests and the demo -------------------------------------------------------
    def trigger(self, cause: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Kill the simulated trader with ``cause``; returns when the new process is up."""
        return simtrader.trigger(self.paths["control"], cause, timeout=timeout)

    def trader_status(self) -> dict[str, Any]:
        return simtrader.status(self.paths["control"])

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def receiver_get(self, path: str) -> Any:
        resp = requests.get(f"{self.receiver_url}{path}", headers=self.auth_headers(), timeout=5)
        resp.raise_for_status()
        return resp.json()

    def incidents(self) -> list[dict[str, Any]]:
        data = self.receiver_get("/incidents?limit=1000")
        return list(data["incidents"])

    def incident(self, incident_id: int) -> dict[str, Any]:
        data: dict[str, Any] = self.receiver_get(f"/incidents/{incident_id}")
        return data

    def _prometheus(self, call: Callable[[PrometheusClient], T]) -> T:
        try:
            return call(PrometheusClient(self.prometheus_url))
        except SourceError as exc:
            raise StackError(str(exc)) from exc

    def prom_api(self, path: str, **params: Any) -> Any:
        return self._prometheus(lambda c: c.api(path, **params))

    def prom_query(self, expr: str) -> list[dict[str, Any]]:
        return self._prometheus(lambda c: c.query(expr))

    def prom_query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._prometheus(lambda c: c.query_range(expr, start, end, step))

    def prom_alerts(self) -> list[dict[str, Any]]:
        return self._prometheus(lambda c: c.alerts())

    def next_evaluation(self, group: str, after: float | None = None) -> float:
        """Unix time of the first evaluation of the shipped rule group ``group`` after ``after``."""
        interval = self.rule_group_interval(group)
        slot = rule_group_slot(SHIPPED_RULES, group, interval)
        now = time.time() if after is None else after
        base = now - (now - slot) % interval
        return base + interval if base <= now else base

    def rule_group_interval(self, group: str) -> float:
        for g in _load_yaml(SHIPPED_RULES).get("groups") or []:
            if g.get("name") == group:
                return parse_duration_seconds(str(g.get("interval") or self.opts.evaluation_interval))
        raise StackError(f"no rule group {group!r} in {SHIPPED_RULES}")

    def last_evaluation(self, group: str) -> float | None:
        """Unix time of the group's latest evaluation as Prometheus reports it (None: not yet)."""
        g = self.rule_group(group)
        raw = str((g or {}).get("lastEvaluation") or "")
        if not raw or raw.startswith("0001-"):
            return None
        head, _, frac = raw.rstrip("Z").partition(".")
        stamp = datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp()
        return stamp + float(f"0.{frac or 0}")

    def rule_group(self, name: str) -> dict[str, Any] | None:
        for group in self.prom_api("rules")["groups"]:
            if group["name"] == name:
                return dict(group)
        return None

    def exporter_metrics(self) -> str:
        return requests.get(f"{self.exporter_url}/metrics", timeout=5).text

    def am_alerts(self, node: int = 0, **filters: str) -> list[dict[str, Any]]:
        params = [("filter", f'{k}="{v}"') for k, v in filters.items()]
        resp = requests.get(f"{self.alertmanagers[node].url}/api/v2/alerts", params=params, timeout=5)
        resp.raise_for_status()
        return list(resp.json())

    def am_post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Post alerts to every Alertmanager, as Prometheus does."""
        for am in self.alertmanagers:
            resp = requests.post(f"{am.url}/api/v2/alerts", json=alerts, timeout=5)
            resp.raise_for_status()

    def am_metric(self, node: int, name: str, **labels: str) -> float:
        text = requests.get(f"{self.alertmanagers[node].url}/metrics", timeout=5).text
        return sum_metric(text, name, labels)

    def describe(self) -> str:
        return json.dumps({"root": str(self.root), **self.urls()}, indent=1)


def sum_metric(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` in a text exposition whose labels include ``labels``."""

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != name:
                continue
            if all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += float(sample.value)
    return total
