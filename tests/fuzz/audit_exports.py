"""A valid audit export, as `admitd audit export` writes it, and the oracle for damaged ones."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st

from admitd.audit import AuditEntry, ChainHead, canonical_bytes
from admitd.audit.chain import links_after
from admitd.audit.checkpoint import sign_checkpoint
from admitd.audit.entry import entry_digest
from admitd.audit.sources import checkpoints_from_file, records_from_file
from admitd.audit.verify import Report, verify_chain

__all__ = [
    "ENTRIES",
    "KEY",
    "ORIGINAL",
    "damaged_exports",
    "says_only_what_the_original_said",
    "verify_file",
]

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ENTRIES = 6
CHECKPOINTED = (3, 6)


def export_lines() -> list[str]:
    """A valid export of six entries with checkpoints at seq 3 and 6, as `audit export` writes."""
    entries = [
        AuditEntry(
            time=1_700_000_000 + n,
            event_type="decision.denied",
            user=f"u{n}\u00e9",
            salt=f"{n:032x}",
        )
        for n in range(ENTRIES)
    ]
    plaintexts = [canonical_bytes(e) for e in entries]
    links = list(links_after(ChainHead.genesis(), (entry_digest(p) for p in plaintexts)))
    lines = []
    for seq in CHECKPOINTED:
        checkpoint = sign_checkpoint(
            KEY,
            stream="admitd:audit",
            seq=seq,
            hash_hex=links[seq - 1].hash.hex(),
            now=1.0,
            instance="a",
        )
        lines.append(json.dumps({"type": "checkpoint", **checkpoint.fields()}, sort_keys=True))
    for link, plaintext in zip(links, plaintexts, strict=True):
        line = {
            "type": "entry", "id": f"{link.seq}-0", "seq": str(link.seq), "prev": link.prev.hex(),
            "digest": link.digest.hex(), "hash": link.hash.hex(), "entry": json.loads(plaintext),
        }  # fmt: skip
        lines.append(json.dumps(line, sort_keys=True, ensure_ascii=False))
    return lines


ORIGINAL = export_lines()
_SPLICES = [
    "\n", "{", "}", '"', ",", ":", "null", "true", "1e999", "-0", "0x1", "\\u0000", "\\ud800",
    "[" * 30, '"seq":"2",', '"type":"checkpoint",', '"entry":{},', "\ufeff", "\x00", "\xff",
]  # fmt: skip


@st.composite
def damaged_exports(draw: st.DrawFn) -> bytes:
    lines = list(ORIGINAL)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["drop", "duplicate", "swap", "edit", "edit", "value"]))
        if kind == "drop" and len(lines) > 1:
            del lines[at]
        elif kind == "duplicate":
            lines.insert(at, lines[at])
        elif kind == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif kind == "edit":
            line = lines[at]
            where = draw(st.integers(0, len(line)))
            piece = draw(st.sampled_from(_SPLICES) | st.text(max_size=3))
            cut = draw(st.integers(0, 3))
            lines[at] = line[:where] + piece + line[where + cut :]
        else:
            doc = json.loads(lines[at]) if _is_json(lines[at]) else {}
            if isinstance(doc, dict) and doc:
                key = draw(st.sampled_from(sorted(doc)))
                doc[key] = draw(
                    st.none() | st.integers() | st.text(max_size=8) | st.just(doc.get(key))
                )
                lines[at] = json.dumps(doc)
    blob = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        blob = blob[: draw(st.integers(0, len(blob)))]
    return blob


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def verify_file(path: Path) -> tuple[Report, bool]:
    """What `admitd audit verify --file` does: checkpoints first, then the chain as a range."""
    checkpoints = checkpoints_from_file(path, KEY.public_key())
    report = verify_chain(
        records_from_file(path),
        opener=None,
        checkpoints=checkpoints.by_seq,
        start=None,
        check_tail=True,
    )
    return report, checkpoints.problem is None


_COVERED = {  # what the chain (entries) and the signature (checkpoints) vouch for
    "entry": ("seq", "prev", "digest", "hash", "entry"),
    "checkpoint": ("stream", "seq", "hash", "time", "instance", "key_id", "sig"),
}


def _normal(line: bytes) -> tuple[str, str] | None:
    """The oracle's reading of one line: (kind, the fields its integrity covers), or None
    if unreadable. Other fields (`id`, anything added) are vouched for by nothing."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    kind = "checkpoint" if doc.get("type") == "checkpoint" else "entry"
    content = {
        k: (v.lower() if isinstance(v, str) and k in ("prev", "digest", "hash") else v)
        for k, v in doc.items()
        if k in _COVERED[kind]
    }
    return kind, json.dumps(content, sort_keys=True)


def says_only_what_the_original_said(blob: bytes) -> bool:
    original = [_normal(line.encode()) for line in ORIGINAL]
    entries = [c for k, c in (n for n in original if n) if k == "entry"]
    checkpoints = {c for k, c in (n for n in original if n) if k == "checkpoint"}
    lines = [line for line in blob.split(b"\n") if line.strip()]
    damaged = [n for n in (_normal(line) for line in lines) if n is not None]
    if len(damaged) != len(lines):
        return False
    mine = [c for k, c in damaged if k == "entry"]
    kept = [c for k, c in damaged if k == "checkpoint"]
    if not set(kept) <= checkpoints:
        return False
    runs = [entries[i : i + len(mine)] for i in range(len(entries) - len(mine) + 1)]
    if mine not in runs:
        return False
    last_checkpointed = max((json.loads(c)["seq"] for c in kept), key=int, default="0")
    return not mine or int(json.loads(mine[-1])["seq"]) >= int(last_checkpointed)
