"""deploy/grafana/admitd.json: the panels issue 15 asks for, PromQL that promtool parses, and
only metric names that a running `admitd serve` exports on its /metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port
from tests.integration.redis_server import RedisServer
from tests.pki_fixtures import PkiSet

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "admitd.json"
ALERT_RULES = REPO / "deploy" / "prometheus" / "admitd-alerts.yaml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian prometheus) not installed"
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ROWS = ["Decisions", "Latency", "Security events", "MFA", "Dependencies", "Certificates and keys"]
# The panels issue 15 point 4 lists, with the unit each must display in.
PANEL_UNITS = {
    "Decisions by reason": "reqps",
    "Allow / deny rate": "reqps",
    "Deny ratio": "percentunit",
    "Check latency p50 / p99": "s",
    "Check latency p99 by outcome": "s",
    "Security events by event": "ops",
    "Device risk events by signal": "ops",
    "MFA policy enforcement by outcome": "ops",
    "Redis availability": "none",
    "Decisions refused: session store unavailable": "reqps",
    "Readiness checks": "none",
    "Audit spool backlog": "percentunit",
    "Audit appends by outcome": "ops",
    "CA certificate expiry": "d",
    "Server certificate expiry": "d",
    "CRL next update": "d",
    "Client certificates expiring within 30 days": "short",
    "KMS active key age": "d",
    "KMS decrypt-only key versions": "short",
}
# Metrics the issue (and the issue 15 contract) wants on the dashboard.
REQUIRED_METRICS = {
    "admitd_decisions_total",
    "admitd_check_duration_seconds_bucket",
    "security_events_total",
    "device_risk_events_total",
    "mfa_policy_enforcement_total",
    "admitd_ready_check",
    "admitd_audit_spool_full_ratio",
    "admitd_audit_appends_total",
    "admitd_ca_certificate_expiry_seconds",
    "admitd_server_certificate_expiry_seconds",
    "admitd_crl_next_update_seconds",
    "admitd_client_certificates_expiring",
    "admitd_kms_active_key_age_seconds",
    "admitd_kms_decrypt_only_versions",
}
ALERTS_QUERY = 'ALERTS{alertname=~"Admitd.*", alertstate="firing"}'
# Prometheus's own series, which admitd does not export.
BUILT_IN = {"ALERTS", "ALERTS_FOR_STATE"}
# Plausible values for Grafana's template variables; job and instance are regex matchers.
VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "job": ".*",
    "instance": ".*",
}


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def all_panels(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows and panels, with the panels of collapsed rows (kept inside the row) too."""
    found: list[dict[str, Any]] = []
    for panel in document["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def panels(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in all_panels(document) if panel["type"] != "row"]


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in VARIABLES, f"unknown template variable ${name} in {expr!r}"
        return VARIABLES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def queries(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target, annotation query and variable query,
    template variables substituted."""
    found: list[tuple[str, str]] = []
    for panel in panels(document):
        for target in panel.get("targets", []):
            where = f"panel {panel['id']} {panel['title']!r} target {target['refId']}"
            found.append((where, substitute(target["expr"])))
    for annotation in document["annotations"]["list"]:
        if "expr" in annotation:
            found.append((f"annotation {annotation['name']!r}", substitute(annotation["expr"])))
    for variable in document["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"].strip())
        assert match, f"variable {variable['name']}: not label_values(selector, label)"
        found.append((f"variable {variable['name']!r}", substitute(match.group(1))))
    return found


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# An identifier that is neither part of a longer one nor a function call.
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"bool", "and", "or", "unless", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label
    matchers, ranges, grouping label lists, function names and keywords are gone."""
    bare = _LABEL_LISTS.sub(" ", _RANGES.sub(" ", _MATCHERS.sub(" ", _STRINGS.sub('""', expr))))
    return {name for name in _IDENTIFIER.findall(bare) if name.lower() not in _KEYWORDS}


def dashboard_metrics(document: dict[str, Any]) -> set[str]:
    return set().union(*(metric_names(expr) for _, expr in queries(document))) - BUILT_IN


def promtool_check(groups: list[dict[str, Any]], work: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    rules = work / "dashboard-rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# (1) The dashboard itself.


def test_it_is_a_dashboard_with_the_rows_and_panels_the_issue_lists() -> None:
    document = dashboard()
    assert document["uid"] == "admitd" and document["schemaVersion"] >= 36
    rows = [panel["title"] for panel in document["panels"] if panel["type"] == "row"]
    assert rows == ROWS
    titles = [panel["title"] for panel in panels(document)]
    assert len(titles) == len(set(titles)), "panel titles repeat"
    assert not set(PANEL_UNITS) - set(titles), "missing panels"
    by_title = {panel["title"]: panel for panel in panels(document)}
    units = {title: by_title[title]["fieldConfig"]["defaults"].get("unit") for title in PANEL_UNITS}
    assert units == PANEL_UNITS
    assert not REQUIRED_METRICS - dashboard_metrics(document)


def test_every_query_uses_the_datasource_variable() -> None:
    document = dashboard()
    variables = {variable["name"]: variable for variable in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query" and variables[name]["datasource"] == DATASOURCE
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    for panel in panels(document):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            # Every series is narrowed to the chosen job and instances.
            assert 'job=~"$job"' in target["expr"], panel["title"]
            assert 'instance=~"$instance"' in target["expr"], panel["title"]


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    everything = all_panels(dashboard())
    ids = [panel["id"] for panel in everything]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    for panel in everything:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_firing_admitd_alerts_are_annotations() -> None:
    annotations = [a for a in dashboard()["annotations"]["list"] if "expr" in a]
    assert [a["expr"] for a in annotations] == [ALERTS_QUERY]
    assert annotations[0]["enable"] and annotations[0]["datasource"] == DATASOURCE
    # The annotation's alertname=~"Admitd.*" covers every rule in the alerts file.
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    alerts = [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]
    assert alerts and all(re.fullmatch("Admitd.*", alert) for alert in alerts)


def test_metric_names_are_found_in_promql() -> None:
    """The extractor the export check relies on, on the shapes the dashboard uses."""
    expr = (
        'histogram_quantile(0.99, sum by (le, outcome) (rate(a_bucket{x="rate(b)", le!="1"}[5m])))'
        " / on (instance) group_left (job) max without (y) (c_total offset 1h) * 86400 + 1e3"
    )
    assert metric_names(expr) == {"a_bucket", "c_total"}
    assert metric_names(ALERTS_QUERY) == {"ALERTS"}


# (2) Every query parses.


@needs_promtool
def test_every_query_parses(tmp_path: Path) -> None:
    document = dashboard()
    found = queries(document)
    groups = [
        {"name": where, "rules": [{"record": f"dashboard:query_{index}", "expr": expr}]}
        for index, (where, expr) in enumerate(found)
    ]
    result = promtool_check(groups, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(found)} rules found" in result.stdout


@needs_promtool
def test_promtool_check_refuses_a_query_that_does_not_parse(tmp_path: Path) -> None:
    groups = [{"name": "broken", "rules": [{"record": "x:y", "expr": "sum(rate(a[5m])"}]}]
    result = promtool_check(groups, tmp_path)
    assert result.returncode != 0 and "x:y" in result.stdout + result.stderr


# (3) Every metric the dashboard names is exported by a running admitd.

POLICY = """
routes:
  - name: health
    match: {path_exact: /healthz}
    public: true
"""


@pytest.fixture(scope="module")
def metrics_url(
    pki: PkiSet, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`admitd serve` with everything the dashboard's metrics come from: Redis (sessions,
    device risk, audit), the dev KMS, the audit spool, a CRL, the TLS Check listener and the
    admin API (server certificates)."""
    work = tmp_path_factory.mktemp("grafana-admitd")
    ports = {name: free_port() for name in ("check", "metrics", "tls", "admin")}
    (work / "p.yaml").write_text(POLICY)
    server_cert = {
        "server_cert": str(pki.directory / "server.pem"),
        "server_key": str(pki.directory / "server.key"),
    }
    config = {
        "listen": f"127.0.0.1:{ports['check']}",
        "metrics_listen": f"127.0.0.1:{ports['metrics']}",
        "policies": "p.yaml",
        "dev_mode": True,
        "redis_url": redis_server.url,
        "tls": {"trust_bundle": str(pki.trust_bundle), "crl_files": [str(pki.crl)]},
        "audit": {"spool_file": str(work / "spool.jsonl")},
        "tls_listen": {
            "address": f"127.0.0.1:{ports['tls']}",
            "client_ca": str(pki.trust_bundle),
            **server_cert,
        },
        "admin": {
            "listen": f"127.0.0.1:{ports['admin']}",
            "principals": ["spiffe://test.example/user/alice"],
            **server_cert,
        },
    }
    (work / "admitd.yaml").write_text(yaml.safe_dump(config))
    argv = [sys.executable, "-m", "admitd", "serve", "--config", str(work / "admitd.yaml")]
    with ProcessGroup(work / "logs") as group:
        process = group.start("admitd", argv)
        for port in ports.values():
            wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{ports['metrics']}/metrics"


def exported_names(exposition: str) -> set[str]:
    """Series names a Prometheus scraping this text stores: every sample's name, and for
    metrics declared with no sample yet (labelled, nothing observed) the names their
    `# TYPE` line implies."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind == "summary":
                names |= {name, f"{name}_sum", f"{name}_count"}
            elif kind == "counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            sample = re.match(r"[A-Za-z_:][\w:]*", line)
            assert sample, line
            names.add(sample.group())
    return names


def test_exported_names_follow_the_type_lines() -> None:
    text = (
        "# TYPE h histogram\n# TYPE c_total counter\n# TYPE d counter\n# TYPE g gauge\n"
        'g{a="1"} 2.0\nu 1\n'
    )
    assert exported_names(text) == {"h_bucket", "h_sum", "h_count", "c_total", "d_total", "g", "u"}


@pytest.mark.integration
def test_every_metric_the_dashboard_names_is_exported(metrics_url: str) -> None:
    wanted = dashboard_metrics(dashboard())
    # Some gauges are set by a periodic task after start-up: give it a few rounds.
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(metrics_url, timeout=5) as reply:
            exported = exported_names(reply.read().decode())
        missing = wanted - exported
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "admitd_decisions_total" in exported
    assert not missing, f"the dashboard names metrics admitd does not export: {sorted(missing)}"
