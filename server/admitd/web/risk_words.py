"""Device-risk signals and MFA ages in plain words, for the step-up page."""

from __future__ import annotations

from admitd.core.risk import Signal

__all__ = ["SIGNAL_WORDS", "age_in_words", "minutes_in_words"]

# One phrase per signal, readable after "high device risk:"; a test checks none is missing.
SIGNAL_WORDS: dict[Signal, str] = {
    Signal.NEW_DEVICE: "this device is new for your account",
    Signal.MISSING_USER_AGENT: "the browser did not identify itself",
    Signal.IP_REPUTATION: "your network address is on a watch list",
    Signal.IMPOSSIBLE_TRAVEL: "your location changed faster than travel allows",
    Signal.PRIVILEGED_WITHOUT_MFA: "a privileged account without a recent second factor",
    Signal.ANOMALY_SCORE: "unusual activity was detected",
    Signal.BASELINE_DEVIATION: "this device differs from your organisation's usual devices",
}


def minutes_in_words(seconds: int) -> str:
    """ "15 minutes", "1 minute", "45 seconds" (a route may ask for less than a minute)."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def age_in_words(seconds: float) -> str:
    """How long ago, coarsely: "just now", "12 minutes ago", "3 hours ago", "2 days ago"."""
    if seconds < 60:
        return "just now"
    for size, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"  # pragma: no cover - the loop always answers for >= 60
