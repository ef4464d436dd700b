"""Why Canvas leaves a file out, in a student's words."""

from ...sync.source import SkipReason


class CanvasSkip(SkipReason):
    LOCKED = "locked", "locked in Canvas"
    HIDDEN = "hidden", "hidden"
