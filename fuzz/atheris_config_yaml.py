"""atheris: admitd.yaml text -> a Config or a ConfigError naming the file, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

import atheris
from harness import main, tolerated

with atheris.instrument_imports(include=["admitd", "yaml"]):
    from admitd.config import config_from_text
    from admitd.errors import ConfigError

from tests.fuzz.seeds import CONFIG_SEED, POLICY_SEED
from tests.pki_fixtures import build_test_pki

WORK = Path(tempfile.mkdtemp(prefix="admitd-fuzz-config-"))
PKI = build_test_pki(WORK / "pki")
(WORK / "policies").mkdir()
(WORK / "policies" / "routes.yaml").write_text(POLICY_SEED)
(WORK / "trust-bundle.pem").write_bytes(PKI.trust_bundle.read_bytes())
(WORK / "client-ca.crl.pem").write_bytes(PKI.crl.read_bytes())
FILE = str(WORK / "admitd.yaml")
SEEDS = [CONFIG_SEED.encode(), b"policies: policies\ntls: {trust_bundle: trust-bundle.pem}\n"]


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        config_from_text(text, FILE, environ={})
    except ConfigError as exc:
        assert exc.file is not None and exc.file.endswith("admitd.yaml"), exc
    except Exception as exc:
        if tolerated(exc):
            return
        raise


if __name__ == "__main__":
    main("config_yaml", one_input, SEEDS)
