"""The GitHub adapter family: everything that talks to GitHub, and nothing that decides.

    adapter.py  `GitHub`: the calls the pipeline makes, GitHub's failures translated into `GitHubError`s
    auth.py     `Clients`: which PyGithub client (token, or the repository's App installation) makes a call
    cache.py    `PageCache` (the contract) with `MemoryPageCache` and `DbPageCache` behind it: the ETags
                and answers of listed pages, so that an unchanged listing is a free 304
"""

from reviewer.github.adapter import GitHub, PostedReview, PullDiff, PullSummary, RateLimit, RepoFile
from reviewer.github.cache import CachedPage, DbPageCache, MemoryPageCache, PageCache

__all__ = ["CachedPage", "DbPageCache", "GitHub", "MemoryPageCache", "PageCache", "PostedReview", "PullDiff",
           "PullSummary", "RateLimit", "RepoFile"]
