"""Canonical encoding, the chain, and verification of in-memory records."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from admitd.audit import GENESIS, AuditEntry, ChainHead, canonical_bytes, chain_hash
from admitd.audit.chain import links_after
from admitd.audit.checkpoint import checkpoint_from_fields, sign_checkpoint, verify_checkpoint
from admitd.audit.entry import canonical_bytes_from_mapping, entry_digest
from admitd.audit.verify import Record, decisions_in, verify_chain


def entry(n: int) -> AuditEntry:
    return AuditEntry(
        time=1_700_000_000 + n, event_type="decision.denied", user=f"u{n}", salt=f"{n:032x}"
    )


def test_canonical_encoding_is_sorted_compact_jcs() -> None:
    e = AuditEntry(
        time=0.5,
        event_type="x",
        user="é",
        risk_signals=("a", "b"),
        details=(("k", "v"),),
        salt="00",
    )
    text = canonical_bytes(e).decode()
    assert text.startswith('{"decision":"","details":{"k":"v"},"device_id":"","event_type":"x"')
    assert '"time":"1970-01-01T00:00:00.500000Z"' in text and '"user":"é"' in text
    assert canonical_bytes_from_mapping(json.loads(text)) == canonical_bytes(e)


def test_genesis_and_chain_hash_are_documented_values() -> None:
    assert hashlib.sha256(b"admitd-audit-genesis-v1").digest() == GENESIS
    digest = bytes(32)
    expected = hashlib.sha256(
        b"admitd-audit-chain-v1\x00" + (1).to_bytes(8, "big") + GENESIS + digest
    )
    assert chain_hash(1, GENESIS, digest) == expected.digest()


def test_salt_makes_equal_entries_digest_differently() -> None:
    a = AuditEntry(time=1.0, event_type="x", source_ip="10.0.0.1")
    b = AuditEntry(time=1.0, event_type="x", source_ip="10.0.0.1")
    assert entry_digest(canonical_bytes(a)) != entry_digest(canonical_bytes(b))


def records(count: int) -> list[Record]:
    plaintexts = [canonical_bytes(entry(n)) for n in range(count)]
    links = links_after(ChainHead.genesis(), (entry_digest(p) for p in plaintexts))
    return [
        Record(
            i + 1,
            f"{i}-0",
            seq=link.seq,
            prev=link.prev,
            digest=link.digest,
            hash=link.hash,
            plaintext=p,
        )
        for i, (link, p) in enumerate(zip(links, plaintexts, strict=True))
    ]


def run(recs: list[Record], **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "opener": None,
        "checkpoints": {},
        "start": ChainHead.genesis(),
        "check_tail": True,
    }
    args.update(kw)
    return verify_chain(recs, **args)  # type: ignore[arg-type]


def renumber(recs: list[Record]) -> list[Record]:
    return [replace(r, position=i + 1) for i, r in enumerate(recs)]


def test_intact_chain_verifies() -> None:
    report = run(records(50))
    assert report.problem is None and report.entries == 50 and report.head is not None
    assert report.head.seq == 50


@pytest.mark.parametrize(
    ("tamper", "kind", "position", "why"),
    [
        pytest.param(
            lambda r: [*r[:10], replace(r[10], plaintext=b"{}"), *r[11:]],
            "modified",
            11,
            "plaintext",
            id="edit-plaintext",
        ),
        pytest.param(lambda r: [*r[:10], *r[11:]], "deleted", 11, "seq 11 missing", id="delete"),
        pytest.param(
            lambda r: [*r[:10], *r[13:]], "deleted", 11, "seq 11..13 missing", id="delete-three"
        ),
        pytest.param(
            lambda r: [*r[:10], r[11], r[10], *r[12:]],
            "reordered",
            11,
            "stands where seq 11",
            id="swap",
        ),
        pytest.param(
            lambda r: [*r[:10], r[5], *r[10:]],
            "reordered",
            11,
            "seq 6 appears after seq 10",
            id="move-back",
        ),
        pytest.param(
            lambda r: [replace(r[0], error="field 'seq' is missing"), *r[1:]],
            "corrupted",
            1,
            "seq",
            id="corrupt",
        ),
        pytest.param(lambda r: r[1:], "deleted", 1, "seq 1 missing", id="delete-first"),
    ],
)
def test_verify_pinpoints_tampering(tamper, kind: str, position: int, why: str) -> None:  # type: ignore[no-untyped-def]
    report = run(renumber(tamper(records(20))))
    assert report.problem is not None, "tampering went unseen"
    assert (report.problem.kind, report.problem.position) == (kind, position)
    assert why in report.problem.why


def test_rehashed_forgery_is_caught_at_the_next_link() -> None:
    recs = records(20)
    forged_plain = canonical_bytes(entry(999))
    digest = entry_digest(forged_plain)
    forged = replace(
        recs[9], plaintext=forged_plain, digest=digest, hash=chain_hash(10, recs[9].prev, digest)
    )
    report = run([*recs[:9], forged, *recs[10:]])
    assert report.problem is not None and report.problem.position == 11
    assert "hash of seq 10" in report.problem.why


def test_checkpoints_catch_truncated_tail_and_rewrites() -> None:
    key = Ed25519PrivateKey.generate()
    recs = records(20)
    cp = sign_checkpoint(
        key, stream="s", seq=20, hash_hex=recs[19].hash.hex(), now=1.0, instance="a"
    )
    assert verify_checkpoint(key.public_key(), cp)
    assert not verify_checkpoint(key.public_key(), replace(cp, seq=19))
    truncated = run(recs[:17], checkpoints={20: cp})
    assert truncated.problem is not None and truncated.problem.kind == "truncated"
    assert "3 entries deleted from the tail" in truncated.problem.why
    wrong = replace(cp, hash=recs[0].hash.hex())
    rewritten = run(recs, checkpoints={20: wrong})
    assert rewritten.problem is not None and rewritten.problem.kind == "checkpoint"


def test_range_trusts_its_first_link() -> None:
    report = run(renumber(records(30)[10:]), start=None, check_tail=False)
    assert report.problem is None and report.entries == 20


def test_a_count_in_an_entry_nested_past_the_recursion_limit_is_unreadable() -> None:
    """An export's entry is the file's: json.loads raised RecursionError in decisions_in."""
    plaintext = b'{"count":"2","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert decisions_in(plaintext) == "the entry is not JSON"


def test_a_checkpoint_field_that_is_not_unicode_text_is_refused_not_raised() -> None:
    """A lone surrogate (an export's "\\ud800") has no UTF-8: never what was signed."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    checkpoint = sign_checkpoint(key, stream="s", seq=1, hash_hex="00" * 32, now=1.0, instance="a")
    with pytest.raises(ValueError, match="instance"):
        checkpoint_from_fields({**checkpoint.fields(), "instance": "\ud800"})
    assert not verify_checkpoint(key.public_key(), replace(checkpoint, instance="\ud800"))
    assert verify_checkpoint(key.public_key(), checkpoint_from_fields(checkpoint.fields()))
