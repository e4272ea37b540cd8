"""The values the command line offers whose meaning other modules own: the ledger's groupings and
output formats (ledger.py) and how many batches `reviewer batches` lists (batchops.py). They live here,
in a module that imports nothing, so that building the command line (`reviewer --help`) loads no
database library; those modules import them from here.
"""

from __future__ import annotations

GROUPINGS = ("review", "pr", "repository", "model", "day", "week", "month")
DEFAULT_GROUPINGS = ("review", "repository", "week")
FORMATS = ("table", "csv", "json")  # what ledger.format_ledger writes
LIST_LIMIT = 50  # batches listed by default
