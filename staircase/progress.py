"""Progress bars for long jobs (tqdm), or a silent stand-in when they are off."""

from __future__ import annotations


class NoBar:
    """Takes what a tqdm bar takes and shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **_kw) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, leave: bool = True):
    """A tqdm bar over ``total`` steps, or a :class:`NoBar` when disabled or empty."""
    if not enabled or total == 0:
        return NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=leave)
