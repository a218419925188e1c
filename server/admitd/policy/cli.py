"""`admitd policy test|explain|schema`: run cases, explain one request, print the schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from admitd.core.mfa_rules import MfaRules
from admitd.fields import Fields
from admitd.policy.cases import CASE_KEYS, case_from_fields
from admitd.policy.explain import explain
from admitd.policy.loader import load_policies
from admitd.policy.schema import policy_schema
from admitd.policy.testing import load_cases, run_case
from admitd.yamlsource import load_yaml

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["register"]


def register(commands: Commands) -> None:
    parser = commands.add_parser("policy", help="test, explain and describe route policies")
    sub = parser.add_subparsers(dest="policy_command", required=True)
    test = sub.add_parser("test", help="run the *.test.yaml cases next to the policies")
    test.add_argument("directory", nargs="?", type=Path, default=Path("policies"))
    test.add_argument("-v", "--verbose", action="store_true", help="also list passing cases")
    test.set_defaults(handler=_test)
    why = sub.add_parser("explain", help="explain the decision for one request")
    why.add_argument(
        "--request", type=Path, required=True, help="YAML: one case (no `expect` needed)"
    )
    why.add_argument("--policies", type=Path, default=Path("policies"))
    why.set_defaults(handler=_explain)
    schema = sub.add_parser("schema", help="print the JSON Schema of policy files")
    schema.set_defaults(handler=_schema)


def _test(args: argparse.Namespace) -> int:
    policy = load_policies(args.directory)
    cases = load_cases(args.directory)
    if not cases:
        print(f"{args.directory}: no *.test.yaml cases found", file=sys.stderr)
        return 1
    results = [run_case(case, policy, MfaRules()) for case in cases]
    for result in results:
        if result.passed and args.verbose:
            print(f"PASS {result.case.name}")
        if not result.passed:
            print(f"FAIL {result.case.name} ({result.case.source})")
            for difference in result.differences:
                print(f"  - {difference}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _explain(args: argparse.Namespace) -> int:
    doc = load_yaml(args.request)
    case = case_from_fields(Fields(doc, (), {"name": "explain", **_mapping(doc.data)}, CASE_KEYS))
    for line in explain(case, load_policies(args.policies), MfaRules()):
        print(line)
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(policy_schema(), indent=2, sort_keys=True))
    return 0


def _mapping(data: object) -> dict[str, object]:
    return dict(data) if isinstance(data, dict) else {}
