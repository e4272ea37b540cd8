"""The review text, pure: what the model is asked and what is posted, as functions of their inputs.

    paths.py    file names as git quotes them in a diff (core.quotePath) and as GitHub names them (real paths)
    diffs.py    the unified diff parsed and numbered on the new side; where GitHub takes an inline comment
    trim.py     ignore patterns and the token budget: which files a request keeps, and why the rest are left out
    render.py   the Jinja2 prompt templates (StrictUndefined), built-in or from `prompts_dir`
    parse.py    the model's `report_review` answer -> a validated `ReviewDraft`; never loses a review
    compose.py  draft + diff index -> the review body and inline comments GitHub will accept
    body.py     the footer, the hidden marker that names the job, and the sanitising of model text

Nothing here imports SQLAlchemy, PyGithub, anthropic or requests, or touches the network, the database or
the clock; `tests/unit/test_layers.py` imports every module in a fresh interpreter and fails if one does.
"""
