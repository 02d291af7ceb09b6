"""One table of secret and state paths (restartguard/paths.py): every shipped file agrees with it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from restartguard import paths
from restartguard.config import DEFAULT_CONFIG_PATHS, Settings

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
SHIPPED_TEXT = sorted(
    [
        ROOT / "README.md",
        ROOT / "alertmanager.yml",
        ROOT / "restartguard.example.yml",
        ROOT / "prometheus" / "prometheus.yml",
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "deploy").rglob("*"),
    ]
)
KNOWN = {
    str(paths.CONFIG_FILE),
    *(str(s.path) for s in paths.SECRETS),
    *(str(d.path) for d in paths.STATE_DIRS),
}
# Paths under the two roots that are not restartguard's own files (other programs' configs, the
# service user's home directory itself).
OTHER_ALLOWED = {"/etc/restartguard/prometheus/prometheus.yml", "/etc/restartguard", "/var/lib/restartguard"}
PATH_RE = re.compile(r"(?:/etc/restartguard|/var/lib/restartguard)(?:/[\w.@-]*[\w@-])*")
# Any spelling of the two secrets' names: receiver.token, receiver_token, discord-webhook.url, ...
# (environment variable names such as RESTARTGUARD_DISCORD_WEBHOOK_URL_FILE are not file names).
SECRET_NAME_RE = re.compile(r"(?<![A-Za-z_])(?:receiver[._-]token|discord[._-]webhook)[\w.-]*")


def unit(name: str) -> dict[str, list[str]]:
    """Directives of a unit's [Service] section; repeated directives keep every value."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in (UNITS / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_every_restartguard_path_in_shipped_files_is_in_the_table() -> None:
    files = [p for p in SHIPPED_TEXT if p.is_file()]
    assert len(files) > 10
    unknown = {
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in files
        for m in PATH_RE.finditer(p.read_text(encoding="utf-8"))
        if m.group(0).rstrip("/") not in KNOWN | OTHER_ALLOWED
    }
    assert unknown == set(), "spell these as restartguard/paths.py does"


def test_no_other_spelling_of_the_secret_files() -> None:
    names = {s.path.name for s in paths.SECRETS}
    wrong = {
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in SHIPPED_TEXT
        if p.is_file()
        for m in SECRET_NAME_RE.finditer(p.read_text(encoding="utf-8"))
        if m.group(0).rstrip(".") not in names
    }
    assert wrong == set()


def test_the_grep_finds_the_spellings_the_deploy_files_once_disagreed_on() -> None:
    wrong = "LoadCredential=token:/etc/restartguard/receiver.token discord-webhook.url /etc/restartguard/discord.env"
    found = {m.group(0) for m in SECRET_NAME_RE.finditer(wrong)} | {
        m.group(0) for m in PATH_RE.finditer(wrong)
    }
    assert {"receiver.token", "discord-webhook.url", "/etc/restartguard/discord.env"} <= found


def test_units_load_the_secrets_as_credentials_named_like_the_files() -> None:
    receiver = unit("restartguard-receiver.service")
    weekly = unit("restartguard-weekly.service")
    for directives, secrets in ((receiver, paths.SECRETS), (weekly, (paths.DISCORD_WEBHOOK,))):
        for secret in secrets:
            assert f"{secret.credential}:{secret.path}" in directives["LoadCredential"]
            assert f"{secret.file_env}=%d/{secret.credential}" in directives["Environment"]
    for name, directives in ((n.name, unit(n.name)) for n in UNITS.glob("*.service")):
        assert "EnvironmentFile" not in directives, f"{name}: secrets come as credentials"


def test_state_directories_of_the_units_and_the_defaults_match_the_table() -> None:
    for state in paths.STATE_DIRS:
        assert state.state_directory in unit(state.unit)["StateDirectory"], state
    defaults = Settings()
    assert defaults.exporter.state_dir == Path(paths.EXPORTER_STATE.path)
    assert defaults.receiver.state_dir == Path(paths.RECEIVER_STATE.path)
    assert defaults.report.out_dir == Path(paths.REPORTS.path)
    assert str(paths.CONFIG_FILE) in DEFAULT_CONFIG_PATHS


def test_units_read_the_configuration_file_of_the_table() -> None:
    for path in UNITS.glob("*.service"):
        starts = unit(path.name).get("ExecStart", [])
        assert all(f"--config {paths.CONFIG_FILE}" in s for s in starts), path.name


def test_example_configuration_uses_the_tables_state_paths() -> None:
    doc = yaml.safe_load((ROOT / "restartguard.example.yml").read_text(encoding="utf-8"))
    for state in paths.STATE_DIRS:
        section, key = state.setting.split(".")
        assert doc[section][key] == str(state.path), state.setting


def test_alertmanager_and_prometheus_read_the_token_file_of_the_table() -> None:
    am = yaml.safe_load((ROOT / "alertmanager.yml").read_text(encoding="utf-8"))
    files = {
        hook["http_config"]["authorization"]["credentials_file"]
        for receiver in am["receivers"]
        for hook in receiver.get("webhook_configs") or []
    }
    assert files == {str(paths.RECEIVER_TOKEN.path)}
    prom = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    files = {
        job["authorization"]["credentials_file"] for job in prom["scrape_configs"] if "authorization" in job
    }
    assert files == {str(paths.RECEIVER_TOKEN.path)}


def test_readme_table_is_rendered_from_the_module() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- paths:begin -->\n", 1)[1].split("<!-- paths:end -->", 1)[0]
    assert block == paths.render_markdown(), "regenerate with: python -m restartguard.paths"
