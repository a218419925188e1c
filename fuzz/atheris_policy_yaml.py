"""atheris: policy YAML text -> a PolicySet or a ConfigError naming the file, nothing else."""

from __future__ import annotations

import atheris
from harness import main, tolerated

with atheris.instrument_imports(include=["admitd", "yaml"]):
    from admitd.errors import ConfigError
    from admitd.policy.loader import policy_set_from_documents
    from admitd.yamlsource import yaml_document_from_text

from tests.fuzz.oracle import CERT_ONLY_POLICY
from tests.fuzz.seeds import POLICY_SEED

SEEDS = [
    POLICY_SEED.encode(),
    CERT_ONLY_POLICY.encode(),
    b"routes: []\n",
    b"unmatched: any_certificate\n",
]


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        policy_set_from_documents([yaml_document_from_text(text, "fuzz.yaml")])
    except ConfigError as exc:
        assert exc.file == "fuzz.yaml", exc
    except Exception as exc:
        if tolerated(exc):
            return
        raise


if __name__ == "__main__":
    main("policy_yaml", one_input, SEEDS)
