"""stub"""


def doctor() -> None:
    """Check."""
