"""reviewer: batch-first AI code review for GitHub."""

__version__ = "0.1.0"
