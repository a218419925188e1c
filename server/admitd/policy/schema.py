"""The JSON Schema of policy files, built from the loader's own key sets and enums.

`policies/schema.json` is this, committed; a test keeps the two equal and checks
that every key the loader accepts is described (and nothing else).
"""

from __future__ import annotations

from typing import Any

from admitd.core.route import SessionRequirement, StepUpAt, Unmatched
from admitd.policy.loader import (
    DEFAULTABLE_KEYS,
    FILE_KEYS,
    IDENTITY_KEYS,
    MATCH_KEYS,
    ORG_OVERRIDE_KEYS,
    ROUTE_KEYS,
)
from admitd.policy.route_parts import RISK_KEYS
from admitd.policy.rules import CONDITION_VARIABLES
from admitd.risk.model import RiskLevel

__all__ = ["policy_schema"]

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_SECONDS = {"type": "integer", "minimum": 1, "maximum": 86400}


def _object(properties: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    assert set(properties) == keys, f"schema and loader disagree: {set(properties) ^ keys}"
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _route_properties() -> dict[str, Any]:
    identities = _object({key: _STRINGS for key in IDENTITY_KEYS}, IDENTITY_KEYS)
    return {
        "public": {"type": "boolean", "default": False},
        "identities": {"oneOf": [{"const": "any"}, identities]},
        "session": {"enum": [s.value for s in SessionRequirement], "default": "none"},
        "mfa_max_age": {
            "oneOf": [_SECONDS, {"type": "object", "additionalProperties": _SECONDS}],
            "description": "seconds, for everyone; or per role with an optional `default`",
        },
        "recovery": {"type": "boolean", "default": False},
        "roles": {**_STRINGS, "description": "any one of these roles admits"},
        "scopes": {**_STRINGS, "description": "all must be in the JWT's `scope` / `scp`"},
        "conditions": {
            **_STRINGS,
            "description": f"CEL over {', '.join(sorted(CONDITION_VARIABLES))}; all must hold",
        },
        "upstream_headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "shadow": {"type": "boolean", "default": False},
        "allow_path_parameters": {
            "type": "boolean",
            "default": False,
            "description": "admit ';' in the path (servlet containers cut `;params` off)",
        },
        "step_up": {
            "enum": [at.value for at in StepUpAt],
            "description": "where stale MFA is refreshed; default `oidc.step_up`",
        },
        "risk": _object(
            {key: {"enum": [level.value for level in RiskLevel]} for key in RISK_KEYS}, RISK_KEYS
        ),
    }


def _match() -> dict[str, Any]:
    header_rule = {
        "oneOf": [
            {"type": "string"},
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"regex": {"type": "string"}, "present": {"const": True}},
            },
        ]
    }
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"]
    return _object(
        {
            "hosts": {
                **_STRINGS,
                "description": "exact, or *.suffix; case, a trailing dot and the port are ignored",
            },
            "path_exact": {"type": "string", "pattern": "^/"},
            "path_prefix": {"type": "string", "pattern": "^/"},
            "path_regex": {"type": "string", "description": "full match, query excluded"},
            "methods": {"type": "array", "items": {"enum": methods}},
            "headers": {"type": "object", "additionalProperties": header_rule},
        },
        MATCH_KEYS,
    )


def policy_schema() -> dict[str, Any]:
    properties = _route_properties()
    override = _object({key: properties[key] for key in ORG_OVERRIDE_KEYS}, ORG_OVERRIDE_KEYS)
    organisations = {
        "type": "object",
        "additionalProperties": override,
        "description": "changes for sessions of that organisation (route: session required)",
    }
    route = _object(
        {
            "name": {"type": "string", "minLength": 1},
            "match": _match(),
            "organisations": organisations,
            **properties,
        },
        ROUTE_KEYS,
    )
    route["required"] = ["name"]
    defaults = _object({key: properties[key] for key in DEFAULTABLE_KEYS}, DEFAULTABLE_KEYS)
    document = _object(
        {
            "unmatched": {
                "enum": [u.value for u in Unmatched],
                "default": "deny",
                "description": "global: one policy file only",
            },
            "require_https": {
                "type": "boolean",
                "default": True,
                "description": "global: one policy file only",
            },
            "defaults": defaults,
            "routes": {"type": "array", "items": route},
        },
        FILE_KEYS,
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "admitd route policy",
        **document,
    }
