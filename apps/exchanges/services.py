"""Writes and exchange calls for connections and paper accounts.

Credentials leave this module only as a gateway built for one call; errors,
logs and return values carry the masked key at most.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from apps.core.compiled import compiled
from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.core.events import publish_event
from apps.exchanges.catalog import SUPPORTED_EXCHANGES
from apps.exchanges.gateway.base import AccountBalance, ConnectionCheck, ExchangeGateway
from apps.exchanges.gateway.errors import AuthenticationFailed, ExchangeError, ExchangeUnavailable
from apps.exchanges.gateway.paper import PaperGateway, paper_account_reset
from apps.exchanges.gateway.prices import PriceSource
from apps.exchanges.models import ExchangeConnection, PaperAccount
from apps.exchanges.ownership import paper_bot_is_owned

logger = logging.getLogger(__name__)

TEST_TIMEOUT_SECONDS = 10
DEFAULT_PAPER_BALANCES = {"USDT": "10000"}


def _validate_credentials(
    *, exchange: str, api_key: str, api_secret: str, passphrase: str, testnet: bool
) -> dict[str, str]:
    errors: dict[str, str] = {}
    info = SUPPORTED_EXCHANGES.get(exchange)
    if info is None:
        errors["exchange"] = f"Unknown exchange {exchange!r}; supported: {', '.join(SUPPORTED_EXCHANGES)}."
        return errors
    if not api_key.strip():
        errors["api_key"] = "The API key is required."
    if not api_secret.strip():
        errors["api_secret"] = "The API secret is required."  # noqa: S105 - a message, not a secret
    if info.needs_passphrase and not passphrase.strip():
        errors["passphrase"] = f"{info.name} API keys have a passphrase; it is required."
    if testnet and not info.has_testnet:
        errors["testnet"] = f"{info.name} has no testnet in ccxt."
    return errors


def _save(connection: ExchangeConnection) -> ExchangeConnection:
    try:
        with transaction.atomic():
            connection.save()
    except IntegrityError as exc:
        raise Conflict(
            "You already have a connection with this label.", fields={"label": "already used"}
        ) from exc
    return connection


@sensitive_variables("api_key", "api_secret", "passphrase")
def connection_create(
    *,
    user,
    exchange: str,
    label: str,
    api_key: str,
    api_secret: str,
    passphrase: str = "",
    testnet: bool = False,
) -> ExchangeConnection:
    """Store a new connection with encrypted credentials (status "untested")."""
    exchange = (exchange or "").strip().lower()
    errors = _validate_credentials(
        exchange=exchange,
        api_key=api_key or "",
        api_secret=api_secret or "",
        passphrase=passphrase or "",
        testnet=testnet,
    )
    if not (label or "").strip():
        label = SUPPORTED_EXCHANGES[exchange].name if exchange in SUPPORTED_EXCHANGES else ""
    if errors:
        raise ValidationFailed(next(iter(errors.values())), fields=errors)
    connection = ExchangeConnection(
        user=user,
        exchange=exchange,
        label=label.strip(),
        api_key=api_key.strip(),
        api_secret=api_secret.strip(),
        passphrase=(passphrase or "").strip(),
        testnet=testnet,
    )
    _save(connection)
    logger.info(
        "exchange connection %s created for user %s (key %s)",
        connection.pk,
        user.pk,
        connection.api_key_masked,
    )
    return connection


@sensitive_variables("api_key", "api_secret", "passphrase", "value")
def connection_update(
    *,
    connection: ExchangeConnection,
    label: str | None = None,
    testnet: bool | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    passphrase: str | None = None,
) -> ExchangeConnection:
    """Change label/testnet, or replace credentials (None or blank keeps the stored value)."""
    if label is not None and label.strip():
        connection.label = label.strip()
    if testnet is not None:
        connection.testnet = testnet
    credentials_changed = False
    for field, value in (("api_key", api_key), ("api_secret", api_secret), ("passphrase", passphrase)):
        if value:
            setattr(connection, field, value.strip())
            credentials_changed = True
    errors = _validate_credentials(
        exchange=connection.exchange,
        api_key=connection.api_key,
        api_secret=connection.api_secret,
        passphrase=connection.passphrase,
        testnet=connection.testnet,
    )
    if errors:
        raise ValidationFailed(next(iter(errors.values())), fields=errors)
    if credentials_changed or testnet is not None:
        # New credentials have not been checked yet: the old status would lie.
        connection.status = ExchangeConnection.Status.UNTESTED
        connection.last_error = ""
        connection.can_trade_spot = connection.can_trade_futures = False
        connection.read_only = connection.can_withdraw = False
    return _save(connection)


def connection_delete(*, connection: ExchangeConnection) -> None:
    """Soft delete: the row stays (orders reference it), hidden from every read."""
    connection.deleted_at = timezone.now()
    connection.status = ExchangeConnection.Status.DISCONNECTED
    connection.save(update_fields=["deleted_at", "status", "updated_at"])


def gateway_for_connection(
    connection: ExchangeConnection, *, timeout_seconds: float | None = None, **options: Any
) -> ExchangeGateway:
    """A ccxt gateway for this connection (credentials decrypted only into the ccxt client)."""
    from apps.exchanges.gateway.ccxt_gateway import CcxtGateway

    gateway = CcxtGateway(
        connection.exchange,
        api_key=connection.api_key,
        secret=connection.api_secret,
        passphrase=connection.passphrase or None,
        testnet=connection.testnet,
        timeout_ms=int((timeout_seconds or 30) * 1000),
        **options,
    )
    return gateway  # the gateway applies MARKETDATA_API_OVERRIDES (a local fake in tests, a proxy)


def _within(seconds: float, fn):
    """Run ``fn`` with an overall deadline (ccxt's timeout is per request; a test makes several)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exchange-check")
    future = pool.submit(fn)
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        raise ExchangeUnavailable(f"The exchange did not answer within {seconds:g} s.") from None
    finally:
        pool.shutdown(wait=False)  # a late answer is dropped; ccxt's own timeout ends the thread


def connection_test(
    *, connection: ExchangeConnection, gateway: ExchangeGateway | None = None
) -> ConnectionCheck:
    """Check the key live (10 s timeout), record status, permissions and the error if any."""
    gateway = gateway or gateway_for_connection(connection, timeout_seconds=TEST_TIMEOUT_SECONDS, retries=0)
    try:
        check = _within(TEST_TIMEOUT_SECONDS, gateway.check_connection)
    except AuthenticationFailed as exc:
        check = ConnectionCheck(ok=False, message=exc.message)
        connection.status = ExchangeConnection.Status.ERROR
    except ExchangeUnavailable as exc:
        check = ConnectionCheck(ok=False, message=exc.message)
        connection.status = ExchangeConnection.Status.DISCONNECTED
    except ExchangeError as exc:
        check = ConnectionCheck(ok=False, message=exc.message)
        connection.status = ExchangeConnection.Status.ERROR
    else:
        connection.status = ExchangeConnection.Status.CONNECTED
        connection.can_trade_spot = check.spot
        connection.can_trade_futures = check.futures
        connection.read_only = check.read_only
        connection.can_withdraw = check.withdraw
    connection.last_error = "" if check.ok else check.message
    connection.last_checked_at = timezone.now()
    connection.save(
        update_fields=[
            "status",
            "last_error",
            "last_checked_at",
            "can_trade_spot",
            "can_trade_futures",
            "read_only",
            "can_withdraw",
            "updated_at",
        ]
    )
    logger.info(
        "exchange connection %s tested: %s (key %s)",
        connection.pk,
        connection.status,
        connection.api_key_masked,
    )
    publish_event(
        connection.user_id,
        "exchange.connection",
        {"id": connection.pk, "status": connection.status, "ok": check.ok, "message": check.message},
        on_commit=True,
    )
    return check


def connection_balance(
    *, connection: ExchangeConnection, gateway: ExchangeGateway | None = None
) -> AccountBalance:
    """The exchange account's balances through the gateway."""
    gateway = gateway or gateway_for_connection(connection, timeout_seconds=TEST_TIMEOUT_SECONDS)
    return gateway.fetch_balance()


# ------------------------------------------------------------------ paper
def _parse_balances(balances: dict[str, Any]) -> dict[str, Decimal]:
    if not isinstance(balances, dict) or not balances:
        raise ValidationFailed(
            'Give at least one balance, e.g. {"USDT": "10000"}.', fields={"balances": "required"}
        )
    out: dict[str, Decimal] = {}
    errors: dict[str, str] = {}
    for asset, amount in balances.items():
        name = str(asset).strip().upper()
        if not name.isalnum() or len(name) > 20:
            errors[str(asset)] = "not an asset code"
            continue
        try:
            value = Decimal(str(amount))
        except (InvalidOperation, ValueError):
            errors[name] = "not a number"
            continue
        if not value.is_finite() or value < 0 or value > Decimal("1e18"):
            errors[name] = "must be between 0 and 1e18"
            continue
        out[name] = value
    if errors:
        raise ValidationFailed("Invalid balances.", fields={"balances": errors})
    return out


@compiled
def _own_paper_account(user_id: int, bot_id: int | None):
    return PaperAccount.objects.filter(user_id=user_id, bot_id=bot_id, replay_id=None).order_by("pk")[:1]


def paper_account_get_or_create(
    *, user, bot_id: int | None = None, exchange: str = "binance"
) -> PaperAccount:
    """The user's paper account (or the bot's own one), created with the default balances.

    A bot id that is not one of the user's bots is a ``NotFound``: no row is created for it.
    """
    if bot_id is not None and not paper_bot_is_owned(user=user, bot_id=bot_id):
        raise NotFound("Bot not found.")
    # The common case (it exists) is one read, outside any transaction: every order placed
    # without an account names comes through here.
    found = _own_paper_account(user.pk, bot_id)
    if found:
        return found[0]
    with transaction.atomic():
        account, created = PaperAccount.objects.get_or_create(
            user=user,
            bot_id=bot_id,
            replay_id=None,
            defaults={"exchange": exchange, "initial_balances": DEFAULT_PAPER_BALANCES},
        )
        if created:
            account = paper_account_reset(account=account)
    return account


def paper_account_set_balances(
    *, account: PaperAccount, balances: dict[str, Any], settings: dict[str, Any] | None = None
) -> PaperAccount:
    """Set new initial balances and reset the account to them (open orders are dropped).

    ``settings``: ``market_type`` (spot / futures) and ``funding_rate``, applied with the reset.
    """
    return paper_account_reset(account=account, balances=_parse_balances(balances), settings=settings)


def paper_account_restart(*, account: PaperAccount, settings: dict[str, Any] | None = None) -> PaperAccount:
    """Reset to the account's initial balances: orders, trades and positions are dropped."""
    return paper_account_reset(account=account, settings=settings)


def paper_gateway(
    account: PaperAccount, *, prices: PriceSource | None = None, match_on_read: bool = True
) -> PaperGateway:
    return PaperGateway(account, prices=prices, match_on_read=match_on_read)


# ------------------------------------------------------------- key rotation
ENCRYPTED_FIELDS = ("api_key", "api_secret", "passphrase")


@transaction.atomic
def encryption_keys_rotate(*, batch_size: int = 500) -> int:
    """Re-encrypt every connection's credentials (deleted ones too) with the first key.

    Works on the raw ciphertexts (``MultiFernet.rotate``), so plaintext is never
    materialized; one transaction, so a row no key can decrypt leaves every row as it was.
    """
    from django.db import connection as db

    from apps.exchanges import crypto

    table = ExchangeConnection._meta.db_table
    columns = ", ".join(db.ops.quote_name(f) for f in ENCRYPTED_FIELDS)
    count = 0
    with db.cursor() as cursor:
        cursor.execute(f"SELECT id, {columns} FROM {db.ops.quote_name(table)} ORDER BY id")  # noqa: S608
        rows = cursor.fetchall()
    for start in range(0, len(rows), batch_size):
        for pk, *tokens in rows[start : start + batch_size]:
            rotated = [crypto.rotate(t) if t else t for t in tokens]
            # .update() bypasses the field's encrypt-on-save: these values are already ciphertexts.
            with db.cursor() as cursor:
                assignments = ", ".join(f"{db.ops.quote_name(f)} = %s" for f in ENCRYPTED_FIELDS)
                cursor.execute(
                    f"UPDATE {db.ops.quote_name(table)} SET {assignments} WHERE id = %s",  # noqa: S608
                    [*rotated, pk],
                )
            count += 1
    logger.info("re-encrypted %d exchange connections with the newest key", count)
    return count


def paper_orders_process() -> int:
    """Run the matching pass for every paper account with open orders or futures positions; returns fills.

    Candles closed since the last pass, then the current price (a tick): resting
    orders fill, and open futures positions pay funding or are liquidated even
    without orders. One account failing (no prices for a symbol, say) does not
    stop the others.
    """
    from apps.exchanges.gateway.errors import ExchangeError
    from apps.exchanges.models import PaperOrder, PaperPosition

    fills = 0
    account_ids = set(PaperOrder.objects.open().values_list("account_id", flat=True).distinct())
    account_ids |= set(PaperPosition.objects.exclude(size=0).values_list("account_id", flat=True).distinct())
    # A replay's account fills on the replay's clock only (see ``PaperAccount.replay_id``).
    accounts = PaperAccount.objects.filter(pk__in=sorted(account_ids), replay_id__isnull=True)
    for account in accounts.order_by("pk"):
        try:
            fills += PaperGateway(account).match()
        except ExchangeError as exc:
            logger.warning("paper account %s: orders not processed: %s", account.pk, exc.message)
    return fills
