"""LimitedText: the text that token work reads, kept up to a character budget.

Counting time must stay bounded whatever a client sends or an upstream generates, so text past
the budget is not kept: only its length is added up, for the characters/4 estimate.
"""

from __future__ import annotations


class LimitedText:
    __slots__ = ("limit", "parts", "kept", "overflow")

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0        # characters kept in `parts`
        self.overflow = 0    # characters past the budget, not kept

    def add(self, text) -> None:
        """Keep `text` (ignored unless a non-empty str) while the budget lasts."""
        if not isinstance(text, str) or not text:
            return
        room = self.limit - self.kept
        if len(text) <= room:
            self.parts.append(text)
            self.kept += len(text)
        else:
            if room > 0:
                self.parts.append(text[:room])
                self.kept = self.limit
            self.overflow += len(text) - max(room, 0)

    @property
    def chars(self) -> int:
        return self.kept + self.overflow

    def joined(self) -> str:
        return "".join(self.parts)
