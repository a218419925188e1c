"""axe-core in Playwright: `assert_accessible(page, name)` on whatever page is showing.

axe (tests/a11y, `make node-deps`) is evaluated through the DevTools protocol, which the
page's CSP (`script-src 'self'`, no inline script) does not govern, so pages are checked
under their real headers; `page.add_script_tag(path=...)` would insert an inline script
that the CSP blocks. The page is checked at desktop and phone sizes; violations of impact
serious or critical fail with one readable line each. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from playwright.sync_api import Page

__all__ = ["ARTIFACTS", "AXE_JS", "DESKTOP", "PHONE", "assert_accessible", "axe_available"]

ROOT = Path(__file__).resolve().parents[2]
AXE_JS = ROOT / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
_FAILING = ("serious", "critical")
_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
  }));
}"""


def axe_available() -> bool:
    return AXE_JS.exists()


@cache
def _axe_source() -> str:
    return AXE_JS.read_text(encoding="utf-8")


def assert_accessible(page: Page, name: str) -> None:
    """Run axe on the current page at both sizes; screenshots `<name>-desktop.png` and
    `<name>-phone.png`. Skips the test when axe is not installed (`make node-deps`)."""
    if not axe_available():
        pytest.skip("axe-core missing: run `make node-deps`")
    ARTIFACTS.mkdir(exist_ok=True)
    before = page.viewport_size
    problems = []
    try:
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(size)
            problems += [f"[{label}] {line}" for line in _violations(page)]
            page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    finally:
        if before is not None:
            page.set_viewport_size(before)
    assert not problems, f"axe found serious/critical problems on {name} ({page.url}):\n" + (
        "\n".join(problems)
    )


def _violations(page: Page) -> list[str]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    found = page.evaluate(_RUN)
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {', '.join(v['targets'])}"
        for v in found
        if v["impact"] in _FAILING
    ]
