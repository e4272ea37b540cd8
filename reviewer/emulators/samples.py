"""Demo data for the GitHub emulator, and `make_diff`, which turns before/after file contents into the
git-style unified diff GitHub serves (tests build their PRs with it too).

The seeded pull requests carry the kind of defects a reviewer should catch (SQL built by string formatting,
a retry loop without backoff, a cache that races and mutates a dict while iterating it, a refactor that
swallows exceptions), next to PRs that should be skipped or pass quietly (a draft, a dependabot lock bump,
a docs change). Base-branch versions are stored too, so `GET contents` and `compare` can rebuild files.

File names are written as git writes them (core.quotePath, its default): a name with a control character,
a quote, a backslash or a non-ASCII byte is C-quoted (`"a/caf\\303\\251.py"`), and a `---`/`+++` line whose
name holds a space ends with a tab. `git_unquote` reads such a name back, as GitHub does for its JSON.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # github.py imports make_diff from here
    from reviewer.emulators.github import GitHubEmulator

CONTEXT_LINES = 3  # git's default
_C_ESCAPES = {0x07: "\\a", 0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0C: "\\f", 0x0D: "\\r", 0x22: '\\"',
              0x5C: "\\\\"}
_C_UNESCAPES = {text: code for code, text in _C_ESCAPES.items()}
_C_TOKEN = re.compile(r'\\[0-7]{3}|\\.|[^\\]', re.DOTALL)


def git_quote(prefix: str, path: str) -> str:
    """`prefix` + `path` as git prints it in a diff header: as it is, or in double quotes with C escapes
    (octal for each byte of a non-ASCII character) when a byte needs one."""
    raw = (prefix + path).encode()
    if all(0x20 <= byte < 0x7F and byte not in _C_ESCAPES for byte in raw):
        return prefix + path
    return '"' + "".join(_C_ESCAPES.get(byte) or (chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:03o}")
                         for byte in raw) + '"'


def git_unquote(name: str) -> str:
    """The path a name in a diff header stands for: a C-quoted name decoded, any other name as it is."""
    if len(name) < 2 or name[0] != '"' or name[-1] != '"':
        return name
    decoded = bytearray()
    for token in _C_TOKEN.findall(name[1:-1]):
        if len(token) == 4:
            decoded.append(int(token[1:], 8))
        elif len(token) == 2:
            decoded.append(_C_UNESCAPES.get(token, ord(token[1]) & 0xFF))
        else:
            decoded += token.encode()
    return decoded.decode("utf-8", "replace")


def _header_line(sign: str, prefix: str, path: str) -> str:
    return f"{sign} {git_quote(prefix, path)}{chr(9) if ' ' in path else ''}\n"


def make_diff(changes: Mapping[str, tuple[str | None, str | None]]) -> str:
    """A `git diff` of path -> (old, new) contents; None on one side means the file is created or deleted."""
    return "".join(_file_diff(path, old, new) for path, (old, new) in sorted(changes.items()) if old != new)


def _file_diff(path: str, old: str | None, new: str | None) -> str:
    lines = [f"diff --git {git_quote('a/', path)} {git_quote('b/', path)}\n"]
    if old is None:
        lines.append("new file mode 100644\n")
    if new is None:
        lines.append("deleted file mode 100644\n")
    mode = "" if old is None or new is None else " 100644"
    lines.append(f"index {_abbrev(old)}..{_abbrev(new)}{mode}\n")
    hunks = _hunks(old or "", new or "")
    if hunks:  # git prints no ---/+++ for an empty file created or deleted
        lines.append("--- /dev/null\n" if old is None else _header_line("---", "a/", path))
        lines.append("+++ /dev/null\n" if new is None else _header_line("+++", "b/", path))
    return "".join(lines) + hunks


def _abbrev(content: str | None) -> str:
    if content is None:
        return "0000000"
    data = content.encode()
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()[:7]


def _hunks(old: str, new: str) -> str:
    diff = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), n=CONTEXT_LINES)
    out = []
    for index, line in enumerate(diff):
        if index < 2:
            continue  # difflib's own ---/+++ lines
        # a last line without "\n" is marked the way git marks it
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


# --- acme/payments ---------------------------------------------------------------------------------

REFUNDS_BEFORE = '''\
"""HTTP endpoints for refunds."""

from __future__ import annotations

import logging
from decimal import Decimal

from flask import Blueprint, abort, jsonify, request

from payments.db import get_connection
from payments.models import Refund

log = logging.getLogger(__name__)

bp = Blueprint("refunds", __name__, url_prefix="/v1/refunds")

MAX_REFUND = Decimal("10000.00")


def _serialize(refund: Refund) -> dict[str, object]:
    return {
        "id": refund.id,
        "charge_id": refund.charge_id,
        "amount": str(refund.amount),
        "currency": refund.currency,
        "status": refund.status.value,
        "created_at": refund.created_at.isoformat(),
    }


@bp.post("")
def create_refund():
    payload = request.get_json(force=True)
    amount = Decimal(str(payload["amount"]))
    if amount <= 0 or amount > MAX_REFUND:
        abort(400, description="amount out of range")
    with get_connection() as conn:
        row = conn.execute(
            "SELECT id, currency, amount_captured FROM charges WHERE id = ?",
            (payload["charge_id"],),
        ).fetchone()
        if row is None:
            abort(404, description="charge not found")
        if amount > Decimal(row["amount_captured"]):
            abort(400, description="refund exceeds captured amount")
        refund = Refund.create(conn, charge_id=row["id"], amount=amount, currency=row["currency"])
    log.info("refund %s created for charge %s", refund.id, refund.charge_id)
    return jsonify(_serialize(refund)), 201


@bp.get("/<refund_id>")
def get_refund(refund_id: str):
    with get_connection() as conn:
        refund = Refund.get(conn, refund_id)
    if refund is None:
        abort(404)
    return jsonify(_serialize(refund))
'''

REFUNDS_AFTER = REFUNDS_BEFORE.replace(
    """@bp.get("/<refund_id>")""",
    """@bp.get("")
def search_refunds():
    merchant_id = request.args["merchant_id"]
    status = request.args.get("status", "succeeded")
    limit = int(request.args.get("limit", 50))
    query = (
        "SELECT * FROM refunds "
        f"WHERE merchant_id = '{merchant_id}' AND status = '{status}' "
        f"ORDER BY created_at DESC LIMIT {limit}"
    )
    with get_connection() as conn:
        rows = conn.execute(query).fetchall()
    return jsonify([_serialize(Refund.from_row(row)) for row in rows])


@bp.get("/<refund_id>")""",
)

REFUNDS_TEST = """\
from __future__ import annotations

import pytest

from payments.app import create_app


@pytest.fixture
def client(tmp_path):
    app = create_app({"DATABASE": str(tmp_path / "payments.db"), "TESTING": True})
    with app.test_client() as client:
        yield client


def test_search_refunds_by_merchant(client, refund_factory):
    refund_factory(merchant_id="m_1", amount="12.50")
    refund_factory(merchant_id="m_2", amount="7.00")

    response = client.get("/v1/refunds", query_string={"merchant_id": "m_1"})

    assert response.status_code == 200
    assert [r["amount"] for r in response.get_json()] == ["12.50"]


def test_search_refunds_requires_merchant(client):
    response = client.get("/v1/refunds")

    assert response.status_code == 400
"""

DELIVERY_BEFORE = '''\
"""Delivers webhook events to merchant endpoints."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Endpoint:
    url: str
    secret: str


@dataclass(frozen=True)
class DeliveryResult:
    status_code: int | None
    attempts: int
    error: str | None = None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def deliver(endpoint: Endpoint, event: dict[str, object]) -> DeliveryResult:
    body = json.dumps(event, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "Acme-Signature": f"t={timestamp},v1={sign(endpoint.secret, timestamp, body)}",
    }
    try:
        response = requests.post(endpoint.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        log.warning("delivery of %s to %s failed: %s", event["id"], endpoint.url, exc)
        return DeliveryResult(None, 1, str(exc))
    return DeliveryResult(response.status_code, 1)
'''

DELIVERY_AFTER = DELIVERY_BEFORE.replace(
    "TIMEOUT_SECONDS = 10\n", "TIMEOUT_SECONDS = 10\nMAX_ATTEMPTS = 5\n"
).replace(
    DELIVERY_BEFORE[DELIVERY_BEFORE.index("def deliver") :],
    """def deliver(endpoint: Endpoint, event: dict[str, object]) -> DeliveryResult:
    body = json.dumps(event, separators=(",", ":")).encode()
    attempt = 0
    last_error: str | None = None
    while attempt < MAX_ATTEMPTS:
        attempt += 1
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Acme-Signature": f"t={timestamp},v1={sign(endpoint.secret, timestamp, body)}",
        }
        try:
            response = requests.post(endpoint.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            last_error = str(exc)
            log.warning("attempt %d for %s failed: %s", attempt, event["id"], exc)
            continue
        if response.status_code < 500:
            return DeliveryResult(response.status_code, attempt)
        last_error = f"HTTP {response.status_code}"
    return DeliveryResult(None, attempt, last_error)
""",
)

RATES_BEFORE = '''\
"""Foreign-exchange rates used to settle multi-currency charges."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import requests

RATES_URL = "https://fx.internal.acme.example/v2/rates"
TIMEOUT_SECONDS = 5
CENT = Decimal("0.01")


class RateUnavailable(Exception):
    pass


def fetch_rate(base: str, quote: str) -> Decimal:
    response = requests.get(RATES_URL, params={"base": base, "quote": quote}, timeout=TIMEOUT_SECONDS)
    if response.status_code != 200:
        raise RateUnavailable(f"{base}/{quote}: HTTP {response.status_code}")
    return Decimal(response.json()["rate"])


def convert(amount: Decimal, base: str, quote: str) -> Decimal:
    if base == quote:
        return amount
    rate = fetch_rate(base, quote)
    return (amount * rate).quantize(CENT, rounding=ROUND_HALF_EVEN)
'''

RATES_AFTER = (
    RATES_BEFORE.replace("import requests\n", "import requests\n\nfrom payments.fx.cache import TTLCache\n")
    .replace(
        'CENT = Decimal("0.01")\n',
        'CENT = Decimal("0.01")\n\n_rates: TTLCache[Decimal] = TTLCache(ttl_seconds=60)\n',
    )
    .replace(
        "    rate = fetch_rate(base, quote)\n",
        "    rate = _rates.get_or_load((base, quote), lambda: fetch_rate(base, quote))\n",
    )
)

CACHE_NEW = '''\
"""A small in-process TTL cache for values that are expensive to fetch."""

from __future__ import annotations

import time
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self.hits = 0
        self.misses = 0

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            self.hits += 1
            return entry[1]
        self.misses += 1
        value = load()
        self._entries[key] = (now + self._ttl, value)
        self.purge_expired()
        return value

    def purge_expired(self) -> None:
        now = self._clock()
        for key, (expires_at, _) in self._entries.items():
            if expires_at <= now:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
'''

EXPORT_BEFORE = '''\
"""Exports ledger entries for finance as CSV."""

from __future__ import annotations

import csv
import io
import logging
from datetime import date
from decimal import Decimal
from typing import Iterable

from payments.db import get_connection

log = logging.getLogger(__name__)

COLUMNS = ("entry_id", "booked_on", "account", "debit", "credit", "currency", "memo")


class ExportError(Exception):
    pass


def _rows(start: date, end: date) -> Iterable[dict[str, object]]:
    with get_connection() as conn:
        yield from conn.execute(
            "SELECT * FROM ledger_entries WHERE booked_on BETWEEN ? AND ? ORDER BY booked_on, entry_id",
            (start.isoformat(), end.isoformat()),
        )


def _format(row: dict[str, object]) -> list[str]:
    debit = Decimal(str(row["debit"] or 0))
    credit = Decimal(str(row["credit"] or 0))
    if debit and credit:
        raise ExportError(f"entry {row['entry_id']} has both a debit and a credit")
    return [
        str(row["entry_id"]),
        str(row["booked_on"]),
        str(row["account"]),
        f"{debit:.2f}",
        f"{credit:.2f}",
        str(row["currency"]),
        str(row["memo"] or ""),
    ]


def export_csv(start: date, end: date) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    count = 0
    for row in _rows(start, end):
        writer.writerow(_format(row))
        count += 1
    log.info("exported %d ledger entries for %s..%s", count, start, end)
    return buffer.getvalue()
'''

EXPORT_AFTER = (
    EXPORT_BEFORE[: EXPORT_BEFORE.index("def export_csv")]
    + '''\
class LedgerExporter:
    """Writes one CSV per booking period; used by the nightly finance job."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.skipped = 0

    def export(self, start: date, end: date) -> str:
        path = f"{self.out_dir}/ledger-{start:%Y%m%d}-{end:%Y%m%d}.csv"
        try:
            with open(path, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(COLUMNS)
                for row in _rows(start, end):
                    try:
                        writer.writerow(_format(row))
                    except:
                        self.skipped += 1
                        pass
        except:
            log.error("ledger export failed")
            return ""
        return path


def export_csv(start: date, end: date) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in _rows(start, end):
        try:
            writer.writerow(_format(row))
        except:
            continue
    return buffer.getvalue()
'''
)

LOCK_PINS = {
    "certifi": "2024.2.2",
    "charset-normalizer": "3.3.2",
    "flask": "3.0.3",
    "idna": "3.7",
    "itsdangerous": "2.2.0",
    "jinja2": "3.1.4",
    "markupsafe": "2.1.5",
    "requests": "2.31.0",
    "urllib3": "2.2.1",
    "werkzeug": "3.0.3",
}
LOCK_VIA = {
    "certifi": "requests",
    "charset-normalizer": "requests",
    "flask": "-r requirements.in",
    "idna": "requests",
    "itsdangerous": "flask",
    "jinja2": "flask",
    "markupsafe": "jinja2\n    #   werkzeug",
    "requests": "-r requirements.in",
    "urllib3": "requests",
    "werkzeug": "flask",
}


def _lock_file(pins: Mapping[str, str]) -> str:
    """A pip-compile --generate-hashes lock file (hashes are stand-ins derived from name and version)."""
    lines = [
        "#",
        "# This file is autogenerated by pip-compile with Python 3.12",
        "# by the following command:",
        "#",
        "#    pip-compile --generate-hashes --output-file=requirements.lock requirements.in",
        "#",
    ]
    for name, version in sorted(pins.items()):
        digests = [hashlib.sha256(f"{name}-{version}-{kind}".encode()).hexdigest() for kind in ("whl", "sdist")]
        lines.append(f"{name}=={version} \\")
        lines.append(f"    --hash=sha256:{digests[0]} \\")
        lines.append(f"    --hash=sha256:{digests[1]}")
        lines.append(f"    # via {LOCK_VIA[name]}")
    return "\n".join(lines) + "\n"


LOCK_BEFORE = _lock_file(LOCK_PINS)
LOCK_AFTER = _lock_file({**LOCK_PINS, "requests": "2.32.3"})

# --- acme/web ----------------------------------------------------------------------------------------

ORDER_PAGE_BEFORE = """\
import { useEffect, useState } from "react";
import { useParams } from "react-router-dom";

import { fetchOrder, type Order } from "../api/orders";
import { formatMoney } from "../lib/money";
import { Spinner } from "../components/Spinner";

export function OrderDetails() {
  const { orderId } = useParams<{ orderId: string }>();
  const [order, setOrder] = useState<Order | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (!orderId) return;
    let cancelled = false;
    fetchOrder(orderId)
      .then((result) => {
        if (!cancelled) setOrder(result);
      })
      .catch((err: Error) => {
        if (!cancelled) setError(err.message);
      });
    return () => {
      cancelled = true;
    };
  }, [orderId]);

  if (error) return <p role="alert">Could not load order: {error}</p>;
  if (!order) return <Spinner />;

  return (
    <section>
      <h1>Order {order.number}</h1>
      <dl>
        <dt>Customer</dt>
        <dd>{order.customerEmail}</dd>
        <dt>Total</dt>
        <dd>{formatMoney(order.total, order.currency)}</dd>
      </dl>
    </section>
  );
}
"""

ORDER_PAGE_AFTER = ORDER_PAGE_BEFORE.replace(
    'import { Spinner } from "../components/Spinner";\n',
    'import { Spinner } from "../components/Spinner";\n'
    'import { RefundStatusBadge } from "../components/RefundStatusBadge";\n',
).replace(
    "        <dd>{formatMoney(order.total, order.currency)}</dd>\n",
    "        <dd>{formatMoney(order.total, order.currency)}</dd>\n        <dt>Refund</dt>\n"
    "        <dd>\n          <RefundStatusBadge orderId={order.id} />\n        </dd>\n",
)

BADGE_NEW = """\
import { useEffect, useState } from "react";

import { fetchRefunds, type Refund } from "../api/refunds";

const COLORS: Record<Refund["status"], string> = {
  pending: "badge-yellow",
  succeeded: "badge-green",
  failed: "badge-red",
};

type Props = { orderId: string };

export function RefundStatusBadge({ orderId }: Props) {
  const [refunds, setRefunds] = useState<Refund[]>([]);

  useEffect(() => {
    fetchRefunds({ orderId }).then(setRefunds);
  }, []);

  if (refunds.length === 0) return <span className="badge">No refunds</span>;

  const latest = refunds[refunds.length - 1];
  return (
    <span className={`badge ${COLORS[latest.status]}`} title={latest.reason}>
      {latest.status}
      <small dangerouslySetInnerHTML={{ __html: latest.note }} />
    </span>
  );
}
"""

REFUND_DOCS_BEFORE = """\
# Refunds API

Refunds return captured money to the customer's original payment method.

## Create a refund

`POST /v1/refunds` with `charge_id` and `amount` (a decimal string in the charge currency).
A refund may not exceed the captured amount, and at most 10,000.00 can be refunded at once.

## Get a refund

`GET /v1/refunds/{refund_id}` returns the refund, including its `status`
(`pending`, `succeeded` or `failed`).
"""

REFUND_DOCS_AFTER = (
    REFUND_DOCS_BEFORE
    + """
## Rate limits

Refund endpoints accept 100 requests per minute per API key. Past that they answer
`429 Too Many Requests` with a `Retry-After` header, in seconds; wait that long before retrying.
"""
)

README = "# acme/payments\n\nPayment processing service: charges, refunds, webhooks and the finance ledger.\n"

PAYMENTS_PULLS = (
    # (title, author, author type, labels, draft, head ref, {path: (old, new)}, body)
    (
        "Add refund search endpoint",
        "alice",
        "User",
        ("api",),
        False,
        "feature/refund-search",
        {
            "payments/api/refunds.py": (REFUNDS_BEFORE, REFUNDS_AFTER),
            "tests/api/test_refunds_search.py": (None, REFUNDS_TEST),
        },
        "Finance needs to list a merchant's refunds by status. Adds `GET /v1/refunds?merchant_id=...`.",
    ),
    (
        "Retry webhook delivery on transient errors",
        "bob",
        "User",
        ("webhooks",),
        False,
        "bob/webhook-retries",
        {"payments/webhooks/delivery.py": (DELIVERY_BEFORE, DELIVERY_AFTER)},
        "Merchants miss events when their endpoint blips. Retry up to 5 times on 5xx and connection errors.",
    ),
    (
        "Cache FX rates in process",
        "carol",
        "User",
        ("performance",),
        False,
        "carol/fx-cache",
        {"payments/fx/rates.py": (RATES_BEFORE, RATES_AFTER), "payments/fx/cache.py": (None, CACHE_NEW)},
        "Every multi-currency charge calls the FX service. Cache rates for 60 s.",
    ),
    (
        "Refactor ledger CSV export",
        "dave",
        "User",
        ("refactor",),
        True,
        "dave/ledger-export",
        {"payments/ledger/export.py": (EXPORT_BEFORE, EXPORT_AFTER)},
        "WIP: move the export into a class the nightly job can call; skip bad rows instead of failing.",
    ),
    (
        "Bump requests from 2.31.0 to 2.32.3",
        "dependabot[bot]",
        "Bot",
        ("dependencies", "python"),
        False,
        "dependabot/pip/requests-2.32.3",
        {"requirements.lock": (LOCK_BEFORE, LOCK_AFTER)},
        "Bumps [requests](https://github.com/psf/requests) from 2.31.0 to 2.32.3.",
    ),
)

WEB_PULLS = (
    (
        "Show refund status badge on the order page",
        "erin",
        "User",
        ("frontend",),
        False,
        "erin/refund-badge",
        {
            "src/pages/OrderDetails.tsx": (ORDER_PAGE_BEFORE, ORDER_PAGE_AFTER),
            "src/components/RefundStatusBadge.tsx": (None, BADGE_NEW),
        },
        "Support asked to see refunds next to the order total.",
    ),
    (
        "docs: document refund API rate limits",
        "frank",
        "User",
        ("documentation",),
        False,
        "frank/refund-docs",
        {"docs/refunds.md": (REFUND_DOCS_BEFORE, REFUND_DOCS_AFTER)},
        "",
    ),
)


def seed_demo(gh: GitHubEmulator) -> list[tuple[str, int]]:
    """Create acme/payments and acme/web with open pull requests; return their (repo, number) pairs."""
    opened: list[tuple[str, int]] = []
    for full_name, pulls in (("acme/payments", PAYMENTS_PULLS), ("acme/web", WEB_PULLS)):
        gh.add_repo(full_name)
        gh.add_file(full_name, "README.md", README.replace("acme/payments", full_name))
        for title, author, author_type, labels, draft, head_ref, changes, body in pulls:
            for path, (old, _new) in changes.items():
                if old is not None:  # the base branch holds the "before" side
                    gh.add_file(full_name, path, old)
            number = gh.open_pull(
                full_name,
                title=title,
                diff=make_diff(changes),
                author=author,
                author_type=author_type,
                draft=draft,
                labels=labels,
                head_ref=head_ref,
                body=body,
            )
            opened.append((full_name, number))
    return opened
