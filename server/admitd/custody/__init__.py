"""Key custody: key operations on a running deployment are dual-control change requests.

One custodian requests (rotate, retire, re-encrypt), a different custodian approves,
each having verified a passkey with user verification just before; admitd applies the
change once and audits every step. See docs/envelope.md, "Key custody".
"""
