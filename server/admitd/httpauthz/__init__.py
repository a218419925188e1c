"""Envoy's HTTP ext_authz (`http_service`) served in admitd's own event loop.

`wire` is what admitd and the Envoy config agree on (no I/O, no third-party imports);
`request` and `response` convert between HTTP and the core's types; `service` is the
Check script; `connection` parses HTTP/1.1 with httptools; `listener` starts and stops
it on the address `config` validates. When to choose it, and its trust model:
docs/http-authz.md.
"""
