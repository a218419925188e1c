"""A test-only OpenID Provider (panva's oidc-provider) and the Python harness that drives it."""
