"""The Prometheus alert rules in deploy/prometheus: valid, behaving as their tests say, named
as issue 15's ops contract says, each linked to its runbook section, and built only on
metrics admitd exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "admitd-alerts.yaml"
RULE_TESTS = PROMETHEUS / "admitd-alerts.test.yaml"
RUNBOOK = ROOT / "docs" / "runbooks" / "ops.md"
SOURCE = ROOT / "server" / "admitd"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian prometheus) not installed"
)

# The placeholder base of every runbook_url (the rules file's header says how to replace it).
RUNBOOK_BASE = "https://runbooks.admitd.example/ops.md#"

# Issue 15's ops contract: every alert of the rules file, exactly.
CONTRACT_ALERTS = frozenset(
    {
        "AdmitdHighRiskBurst",
        "AdmitdCriticalRiskAttempts",
        "AdmitdBaselineDeviation",
        "AdmitdCaCertificateExpiringSoon",
        "AdmitdServerCertificateExpiringSoon",
        "AdmitdClientCertificatesExpiringSoon",
        "AdmitdCrlNextUpdateSoon",
        "AdmitdMasterKeyOld",
        "AdmitdDenyRateSpike",
        "AdmitdCheckLatencyHigh",
        "AdmitdSessionStoreUnavailable",
        "AdmitdAuditSpoolFilling",
        "AdmitdAuditAppendFailures",
        "AdmitdAuditSpoolRecordQuarantined",
        "AdmitdIdentityProviderUnavailable",
        "AdmitdNotReady",
    }
)

# Issue 15 point 2's new metrics, as the contract names them. The source check below finds
# them too once they are declared in server/admitd; this list only covers the time between.
CONTRACT_METRICS = frozenset(
    {
        "admitd_ca_certificate_expiry_seconds",
        "admitd_crl_next_update_seconds",
        "admitd_server_certificate_expiry_seconds",
        "admitd_client_certificates_expiring",
        "admitd_kms_active_key_age_seconds",
        "admitd_kms_decrypt_only_versions",
        "admitd_ready_check",
    }
)

SEVERITIES = frozenset({"page", "warning"})


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]
    assert rules, "no alert rules found"
    return rules


# ---- PromQL: the metric names an expression selects ----------------------------------------

_PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "inf", "nan"}
)
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Every bare metric name in a PromQL expression: what is left once strings, label
    matchers, ranges and grouping clauses are removed, minus functions and keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if call is None and word.lower() not in _PROMQL_KEYWORDS:
            names.add(word)
    return names


def test_metric_names_finds_selectors_only() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{outcome="deny"}[5m]))) > 0.1'
        " and on () sum(rate(b_total[1h] offset 5m)) * 3"
        ' or label_replace(c_ratio > 0.5, "cause", "x", "", "") unless on (instance) d'
        " or on () vector(0)"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c_ratio", "d"}


# ---- the metrics admitd declares, and the names Prometheus sees for them ----------------------

_DECLARATION = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|Info|Enum"
    r"|CounterMetricFamily|GaugeMetricFamily|HistogramMetricFamily|SummaryMetricFamily)"
    r'\(\s*"([A-Za-z_:][\w:]*)"'
)


def exposed_names(kind: str, name: str) -> set[str]:
    """prometheus_client's exposition: counters get `_total` (added if missing), histograms
    and summaries their `_bucket`/`_count`/`_sum` series."""
    kind = kind.removesuffix("MetricFamily")
    if kind == "Counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind == "Histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
    if kind == "Summary":
        return {name, f"{name}_count", f"{name}_sum", f"{name}_created"}
    if kind == "Info":
        return {f"{name}_info"}
    return {name}


def declared_metrics() -> set[str]:
    names: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        if "_proto" in path.parts:
            continue
        for kind, name in _DECLARATION.findall(path.read_text()):
            names |= exposed_names(kind, name)
    return names


def test_rules_use_only_metrics_admitd_exports() -> None:
    declared = declared_metrics()
    # The scan itself works: plain names, a counter declared without _total, a histogram.
    assert {
        "admitd_decisions_total",
        "device_risk_events_total",
        "admitd_check_duration_seconds_bucket",
        "admitd_audit_spool_full_ratio",
    } <= declared
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(rule["alert"])
    assert {"admitd_decisions_total", "admitd_check_duration_seconds_bucket"} <= set(used)
    unknown = {
        name: sorted(alerts)
        for name, alerts in used.items()
        if name not in declared and name not in CONTRACT_METRICS
    }
    assert not unknown, f"alert exprs use metrics admitd does not declare: {unknown}"


# ---- names, annotations, runbook links -------------------------------------------------------


def test_alert_names_are_the_contracts() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert names == CONTRACT_ALERTS, (
        f"missing: {sorted(CONTRACT_ALERTS - names)}, not in the contract: "
        f"{sorted(names - CONTRACT_ALERTS)}"
    )


def test_every_alert_has_severity_summary_description_and_runbook_url() -> None:
    for rule in alert_rules():
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert str(annotations.get(key, "")).strip(), f"{rule['alert']}: no {key}"


def test_runbook_urls_link_each_alerts_own_section() -> None:
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        assert url == RUNBOOK_BASE + rule["alert"].lower(), (rule["alert"], url)


def github_anchor(heading: str) -> str:
    """GitHub's heading id: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_github_anchor_matches_the_contracts_examples() -> None:
    assert github_anchor("Revoke a user's sessions and tokens") == (
        "revoke-a-users-sessions-and-tokens"
    )
    assert github_anchor("Rotate a KMS master key and re-encrypt") == (
        "rotate-a-kms-master-key-and-re-encrypt"
    )
    assert github_anchor("AdmitdNotReady") == "admitdnotready"
    assert github_anchor("`admitd keys` [rotate](#x)") == "admitd-keys-rotate"


def runbook_anchors(markdown: str) -> set[str]:
    """The anchors of every ATX heading outside code fences (a repeated heading gets -1, -2)."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    fence = ""
    for line in markdown.splitlines():
        marker = re.match(r"\s{0,3}(`{3,}|~{3,})", line)
        if marker:
            if not fence:
                fence = marker.group(1)[0]
            elif marker.group(1)[0] == fence:
                fence = ""
            continue
        heading = re.match(r"\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fence or not heading:
            continue
        anchor = github_anchor(heading.group(1))
        seen = counts.get(anchor, 0)
        counts[anchor] = seen + 1
        anchors.add(anchor if seen == 0 else f"{anchor}-{seen}")
    return anchors


def test_runbook_anchors_are_headings_in_the_runbook() -> None:
    if not RUNBOOK.is_file():
        pytest.fail(f"{RUNBOOK} is missing: every runbook_url links into it")
    anchors = runbook_anchors(RUNBOOK.read_text())
    missing = {
        rule["alert"]: rule["annotations"]["runbook_url"]
        for rule in alert_rules()
        if rule["annotations"]["runbook_url"].partition("#")[2] not in anchors
    }
    assert not missing, f"runbook_url anchors with no heading in docs/runbooks/ops.md: {missing}"


def test_runbook_anchors_ignores_code_fences_and_numbers_repeats() -> None:
    markdown = "# A\n```\n# Not a heading\n```\n## B c\n### B c\n~~~\n## D\n~~~\n"
    assert runbook_anchors(markdown) == {"a", "b-c", "b-c-1"}


# ---- the promtool tests cover every rule -----------------------------------------------------


def test_every_rule_has_a_firing_and_a_silent_promtool_case() -> None:
    document = yaml.safe_load(RULE_TESTS.read_text())
    fired: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for case in document["tests"]:
        for check in case.get("alert_rule_test", []):
            if not check.get("exp_alerts"):
                silent.add(check["alertname"])
            for alert in check.get("exp_alerts") or []:
                fired.add((check["alertname"], alert["exp_labels"]["severity"]))
    rules = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()}
    assert rules <= fired, f"rules no test fires: {sorted(rules - fired)}"
    assert not CONTRACT_ALERTS - silent, f"no silent case: {sorted(CONTRACT_ALERTS - silent)}"


@needs_promtool
def test_rules_are_valid() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
