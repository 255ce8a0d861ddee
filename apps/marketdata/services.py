"""Writes: catalog upkeep, candle import and subscriptions.

Downloads through ccxt live in ``download.py``, live prices in ``live.py``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from apps.core.errors import Conflict, DomainError, ValidationFailed
from apps.core.jobs import JobCancelled, JobMonitor, JobStatus, JobTimeLimitExceeded, job_publish_status
from apps.core.jobs import job_cancel as core_job_cancel
from apps.exchanges.catalog import exchange_name
from apps.marketdata import offline_markets, store
from apps.marketdata.errors import UnknownMarket
from apps.marketdata.gateway import check_supported, download_gateway
from apps.marketdata.importers.files import read_candle_file
from apps.marketdata.models import Exchange, ImportJob, Market, Subscription
from apps.marketdata.selectors import market_get
from apps.marketdata.timeframes import validate_timeframe

Progress = Callable[[int, int], None]
logger = logging.getLogger(__name__)

# A download of years of 1m candles pages for a long time under the exchange's rate limit.
JOB_TIME_LIMIT_SECONDS = 6 * 60 * 60


# ----------------------------------------------------------------- catalog
def exchange_ensure(*, exchange: str) -> Exchange:
    """The ``Exchange`` row for a ccxt id, created on first use."""
    obj, _ = Exchange.objects.get_or_create(slug=exchange, defaults={"name": exchange_name(exchange)})
    return obj


def market_ensure(*, exchange: str, symbol: str, **attrs: Any) -> Market:
    """The ``Market`` row, created from the offline catalog (or ``attrs``) if missing.

    ``symbol`` may be unified (``BTC/USDT``) or the exchange's id (``BTCUSDT``).
    Raises ``UnknownMarket`` when neither the store, the catalog nor ``attrs``
    know the market.
    """
    try:
        return market_get(exchange=exchange, symbol=symbol)
    except UnknownMarket:
        pass
    spec = offline_markets.offline_market(exchange, symbol)
    if spec is None:
        if not attrs.get("base") or not attrs.get("quote"):
            raise UnknownMarket(
                f"Unknown market {symbol!r} on {exchange!r}: not in the offline catalog; "
                "run `manage.py refresh_markets` while online.",
                fields={"symbol": [f"unknown market {symbol!r}"]},
            )
        spec = {"symbol": symbol, "exchange_symbol": symbol.replace("/", "").split(":")[0]}
    spec = {**spec, **attrs}
    unified = spec.pop("symbol")
    ex = exchange_ensure(exchange=exchange)
    try:
        with transaction.atomic():
            market, _ = Market.objects.get_or_create(exchange=ex, symbol=unified, defaults=spec)
    except IntegrityError:  # created concurrently
        market = Market.objects.get(exchange=ex, symbol=unified)
    market.exchange = ex
    return market


# ----------------------------------------------------------------- import
@dataclass
class ImportReport:
    file: str
    exchange: str
    symbol: str
    timeframe: str
    rows: int
    inserted: int
    skipped: int
    first: datetime | None
    last: datetime | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["first"] = self.first.isoformat() if self.first else None
        data["last"] = self.last.isoformat() if self.last else None
        return data

    def summary(self) -> str:
        span = f"{self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M}" if self.first else "no rows"
        return (
            f"{self.file}: {self.rows} rows ({span}), {self.inserted} inserted, "
            f"{self.skipped} already stored, {self.seconds:.2f} s"
        )


def candles_import_arrays(
    *, exchange: str, symbol: str, timeframe: str, ts, ohlcv, progress: Progress | None = None
) -> int:
    """Bulk-insert already validated candles (sorted unique int64 ms, float64 (n, 5)); returns inserted."""
    validate_timeframe(timeframe)
    market = market_ensure(exchange=exchange, symbol=symbol)
    with transaction.atomic():
        return store.upsert(market_id=market.id, timeframe=timeframe, ts=ts, ohlcv=ohlcv, progress=progress)


def candles_import_file(
    *,
    path: str | Path,
    exchange: str = "binance",
    symbol: str,
    timeframe: str,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a candle file (Binance dump CSV/zip or plain OHLCV CSV, ``.gz`` ok).

    Idempotent: candles already stored are skipped (``ON CONFLICT DO NOTHING``),
    so re-importing changes nothing. The whole file is validated before the
    first write and written in one transaction: a bad file raises
    ``ImportFailed`` naming the file and line, and nothing is stored.
    ``progress(done, total)`` is called as rows are written.
    """
    started = time.perf_counter()
    validate_timeframe(timeframe)
    market = market_ensure(exchange=exchange, symbol=symbol)
    parsed = read_candle_file(path, timeframe=timeframe)
    with transaction.atomic():
        inserted = store.upsert(
            market_id=market.id, timeframe=timeframe, ts=parsed.ts, ohlcv=parsed.ohlcv, progress=progress
        )
    n = len(parsed.ts)
    return ImportReport(
        file=parsed.source,
        exchange=exchange,
        symbol=market.symbol,
        timeframe=timeframe,
        rows=parsed.rows,
        inserted=inserted,
        skipped=parsed.rows - inserted,
        first=datetime.fromtimestamp(parsed.ts[0] / 1000, tz=UTC) if n else None,
        last=datetime.fromtimestamp(parsed.ts[-1] / 1000, tz=UTC) if n else None,
        seconds=time.perf_counter() - started,
    )


# ------------------------------------------------------------ subscriptions
def subscription_create(
    *, user, exchange: str, symbol: str, timeframe: str = "1h", note: str = ""
) -> Subscription:
    """Watch a market (created from the catalog if needed); a duplicate is a ``Conflict``."""
    validate_timeframe(timeframe)
    market = market_ensure(exchange=exchange, symbol=symbol)
    try:
        with transaction.atomic():
            return Subscription.objects.create(user=user, market=market, timeframe=timeframe, note=note)
    except IntegrityError:
        raise Conflict(
            f"You already watch {market.symbol} on {exchange}.",
            fields={"symbol": ["already on your watchlist"]},
        ) from None


def subscription_update(
    *, subscription: Subscription, timeframe: str | None = None, note: str | None = None
) -> Subscription:
    if timeframe is not None:
        subscription.timeframe = validate_timeframe(timeframe)
    if note is not None:
        subscription.note = note
    subscription.save(update_fields=["timeframe", "note"])
    return subscription


def subscription_delete(*, subscription: Subscription) -> None:
    subscription.delete()


# ------------------------------------------------------------ live prices
def prices_publish() -> int:
    """Publish a ``price`` event to every user for each market they watch; returns markets polled.

    One ticker per market however many users watch it (the ticker is cached
    briefly too), so the poller's cost grows with markets, not users.
    """
    import logging
    from collections import defaultdict

    from apps.core.errors import DomainError
    from apps.core.events import publish_event
    from apps.marketdata import live

    watchers: dict[int, list[int]] = defaultdict(list)
    markets: dict[int, tuple[str, str]] = {}
    rows = Subscription.objects.values_list(
        "user_id", "market_id", "market__exchange__slug", "market__symbol"
    )
    for user_id, market_id, exchange, symbol in rows:
        watchers[market_id].append(user_id)
        markets[market_id] = (exchange, symbol)
    for market_id, (exchange, symbol) in markets.items():
        try:
            data = live.ticker(exchange=exchange, symbol=symbol)
        except DomainError as exc:  # no data for one market must not stop the others
            logging.getLogger(__name__).info("no price for %s %s: %s", exchange, symbol, exc.message)
            continue
        for user_id in watchers[market_id]:
            publish_event(user_id, "price", data)
    return len(markets)


# ------------------------------------------------------------------ jobs
def job_create(
    *,
    user,
    kind: str,
    exchange: str,
    symbol: str,
    timeframe: str,
    params: dict[str, Any],
    enqueue: bool = True,
) -> ImportJob:
    """Record an import/download job and (with ``enqueue``) queue it after commit.

    Progress and status changes arrive as ``marketdata.job`` events.
    """
    from apps.marketdata.tasks import run_job

    validate_timeframe(timeframe)
    if kind == ImportJob.Kind.DOWNLOAD:
        check_supported(exchange)
    market = market_ensure(exchange=exchange, symbol=symbol)
    job = ImportJob.objects.create(
        user=user, kind=kind, exchange=exchange, symbol=market.symbol, timeframe=timeframe, params=params
    )
    if enqueue:
        transaction.on_commit(lambda: run_job.delay(job.id))
    return job


def job_submit(
    *,
    user,
    kind: str,
    exchange: str,
    symbol: str,
    timeframe: str,
    upload: UploadedFile | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ImportJob:
    """A job from the API or the Markets page: an import keeps its upload until the job ran."""
    params: dict[str, Any] = {}
    if kind == ImportJob.Kind.IMPORT:
        if upload is None:
            raise ValidationFailed("An import needs a candle file.", fields={"file": ["required"]})
        params["path"] = str(upload_save(upload=upload))
        params["filename"] = upload.name
    for key, value in (("start", start), ("end", end)):
        if value:
            params[key] = value.isoformat()
    try:
        return job_create(
            user=user, kind=kind, exchange=exchange, symbol=symbol, timeframe=timeframe, params=params
        )
    except Exception:
        _discard_upload(params.get("path"))  # no job will ever read it
        raise


def upload_save(*, upload: UploadedFile) -> Path:
    """Store an uploaded candle file under ``VAR_DIR/uploads/marketdata`` for the worker to import."""
    folder = _uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    # A random prefix: the name is the user's, never trusted as a path.
    safe = "".join(ch for ch in Path(upload.name).name if ch.isalnum() or ch in "._-")[:100] or "candles.csv"
    path = folder / f"{uuid.uuid4().hex}_{safe}"
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return path


def _uploads_dir() -> Path:
    return Path(settings.VAR_DIR) / "uploads" / "marketdata"


def job_cancel(*, job: ImportJob) -> ImportJob:
    """Cancel an import/download: a pending one at once, a running one at its next page or chunk.

    Raises ``Conflict`` when it has already finished.
    """
    return core_job_cancel(job)


def _job_time_limit() -> float:
    return float(getattr(settings, "MARKETDATA_JOB_TIME_LIMIT_SECONDS", JOB_TIME_LIMIT_SECONDS))


def _finish(job_id: int, status: str, **fields: Any) -> None:
    if ImportJob.objects.finish(job_id, status, **fields):
        job_publish_status(ImportJob.objects.get(id=job_id))


def job_run(*, job_id: int, worker: str = "") -> None:
    """Run a job (in a worker): claim it, report progress, heartbeat, honour cancel, record the outcome."""
    # Claim with a conditional update so a redelivered task does not run twice.
    if not ImportJob.objects.claim(job_id, worker=worker):
        return
    job = ImportJob.objects.get(id=job_id)
    job_publish_status(job)
    limit = _job_time_limit()
    monitor = JobMonitor(
        job,
        event=ImportJob.status_event,
        time_limit=limit,
        time_limit_message=f"The {job.kind} exceeded the time limit of {limit:g} s and was stopped.",
    )

    def progress(done: int, total: int) -> None:
        monitor.check()  # inside an import's transaction: a cancel rolls the whole file back
        monitor.progress(100.0 * done / total if total else 100.0)

    try:
        monitor.check()
        if job.kind == ImportJob.Kind.IMPORT:
            report = candles_import_file(
                path=job.params["path"], exchange=job.exchange, symbol=job.symbol, timeframe=job.timeframe,
                progress=progress,
            )  # fmt: skip
            outcome = {"inserted": report.inserted, "skipped": report.skipped, "message": report.summary()}
        else:
            outcome = _run_download(job, monitor=monitor, progress=progress)
    except JobCancelled:
        _finish(job.id, JobStatus.CANCELLED, message="Cancelled; nothing more was stored.")
    except JobTimeLimitExceeded as exc:
        _finish(job.id, JobStatus.FAILED, error_code="time_limit", error=str(exc))
    except DomainError as exc:
        _finish(job.id, JobStatus.FAILED, error_code=exc.code, error=exc.message, error_detail=repr(exc))
    except Exception as exc:
        logger.exception("marketdata job %s failed", job.id)
        _finish(
            job.id,
            JobStatus.FAILED,
            error_code="internal_error",
            error="The job failed unexpectedly; the error has been logged.",
            error_detail=repr(exc)[:5000],
        )
        raise
    else:
        _finish(job.id, JobStatus.COMPLETED, **outcome)
    finally:
        _discard_upload(job.params.get("path"))


def _run_download(job: ImportJob, *, monitor: JobMonitor, progress: Progress) -> dict[str, Any]:
    from apps.marketdata.download import candles_download

    def sleep(seconds: float) -> None:
        # Backoff waits between retries: keep the heartbeat going and stop at once on cancel.
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            monitor.check()
            monitor.heartbeat()
            time.sleep(min(left, 0.5))

    start, end = job.params.get("start"), job.params.get("end")
    report = candles_download(
        exchange=job.exchange,
        symbol=job.symbol,
        timeframe=job.timeframe,
        start=datetime.fromisoformat(start) if start else None,
        end=datetime.fromisoformat(end) if end else None,
        gateway=download_gateway(job.exchange, sleep=sleep),
        progress=progress,
    )
    return {"inserted": report.inserted, "message": report.summary()}


def _discard_upload(path: str | None) -> None:
    """Uploaded files are only kept until their import ran (files given by path are left alone)."""
    if not path:
        return
    uploads = _uploads_dir().resolve()
    candidate = Path(path).resolve()
    if candidate.parent == uploads:
        candidate.unlink(missing_ok=True)
