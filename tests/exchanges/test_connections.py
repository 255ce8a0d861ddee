"""Exchange connections: encryption at rest, rotation, masking everywhere, owner scoping, bad input, API."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection as db
from django.urls import reverse

from apps.exchanges import crypto, services
from apps.exchanges.models import ExchangeConnection
from tests.exchanges.fake_binance_account import API_KEY, SECRET, BinanceAccount
from tests.factories import UserFactory
from tests.support.api import assert_error
from tests.support.fake_exchange import FakeBinance, FakeResponse

pytestmark = pytest.mark.django_db

URL = "/api/v1/exchanges/connections/"
PASSPHRASE = "my-okx-passphrase-77"


def raw_row(pk: int) -> tuple[str, str, str]:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT api_key, api_secret, passphrase FROM exchanges_exchangeconnection WHERE id = %s", [pk]
        )
        return cursor.fetchone()


def create(client, **overrides):
    body = {"exchange": "binance", "label": "Main", "api_key": API_KEY, "api_secret": SECRET, **overrides}
    return client.post(URL, body, format="json")


def assert_masked(text: str) -> None:
    assert SECRET not in text
    assert API_KEY not in text
    assert API_KEY[:-4] not in text
    assert PASSPHRASE not in text


# ------------------------------------------------------------ encryption at rest
def test_credentials_are_encrypted_at_rest(auth_client, settings):
    response = create(auth_client, exchange="okx", passphrase=PASSPHRASE)
    assert response.status_code == 201, response.content
    raw_key, raw_secret, raw_passphrase = raw_row(response.json()["id"])
    for raw, plain in ((raw_key, API_KEY), (raw_secret, SECRET), (raw_passphrase, PASSPHRASE)):
        assert plain not in raw and plain[-8:] not in raw
        assert (
            MultiFernet([Fernet(k) for k in settings.FIELD_ENCRYPTION_KEYS]).decrypt(raw.encode()).decode()
            == plain
        )
    connection = ExchangeConnection.objects.get()
    assert (connection.api_key, connection.api_secret, connection.passphrase) == (API_KEY, SECRET, PASSPHRASE)


def test_rotation_re_encrypts_every_row_with_the_newest_key(user, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    first = services.connection_create(
        user=user, exchange="binance", label="a", api_key=API_KEY, api_secret=SECRET
    )
    second = services.connection_create(
        user=user, exchange="okx", label="b", api_key="okxkey123456789", api_secret="okxsecret123456789",
        passphrase=PASSPHRASE,
    )  # fmt: skip
    services.connection_delete(connection=second)  # soft-deleted rows are rotated too
    before = raw_row(first.pk)
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_keys", stdout=open(os.devnull, "w"))  # noqa: SIM115
    after = raw_row(first.pk)
    assert after != before
    only_new = MultiFernet([Fernet(new)])
    assert only_new.decrypt(after[1].encode()).decode() == SECRET
    assert only_new.decrypt(raw_row(second.pk)[2].encode()).decode() == PASSPHRASE
    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old key is gone: everything still reads
    assert ExchangeConnection.objects.get(pk=first.pk).api_secret == SECRET
    assert ExchangeConnection.objects.get(pk=second.pk).passphrase == PASSPHRASE


def test_a_missing_key_is_a_clear_error_and_rotation_changes_nothing(user, settings):
    connection = services.connection_create(
        user=user, exchange="binance", label="a", api_key=API_KEY, api_secret=SECRET
    )
    before = raw_row(connection.pk)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.UndecryptableValue) as err:
        ExchangeConnection.objects.get(pk=connection.pk)
    assert "FIELD_ENCRYPTION_KEYS" in str(err.value) and SECRET not in str(err.value)
    with pytest.raises(CommandError):
        call_command("rotate_encryption_keys")
    assert raw_row(connection.pk) == before


def test_malformed_keys_stop_start_up(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured) as err:
        crypto.check_keys()
    assert "not-a-fernet-key" not in str(err.value) and "#1" in str(err.value)
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured):
        crypto.encrypt("x")


def test_production_without_keys_refuses_to_start(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("FIELD_ENCRYPTION_KEYS", "PYTEST_CURRENT_TEST")}
    env.update(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY="x" * 60,
        DJANGO_ALLOWED_HOSTS="example.com",
        DJANGO_SETTINGS_MODULE="config.settings",
        VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS is required in production" in result.stderr
    env["FIELD_ENCRYPTION_KEYS"] = "short"
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "not a valid Fernet key" in result.stderr


# ------------------------------------------------------------------ masking
def test_every_response_masks_the_key_and_never_shows_the_secret(auth_client, caplog):
    caplog.set_level(logging.DEBUG)
    created = create(auth_client, exchange="okx", passphrase=PASSPHRASE)
    pk = created.json()["id"]
    responses = [
        created,
        auth_client.get(URL),
        auth_client.get(f"{URL}{pk}/"),
        auth_client.patch(f"{URL}{pk}/", {"label": "Renamed"}, format="json"),
    ]
    for response in responses:
        assert response.status_code in (200, 201)
        assert_masked(response.content.decode())
    body = created.json()
    assert body["api_key"] == "••••••••" + API_KEY[-4:]
    assert body["has_passphrase"] is True
    assert "api_secret" not in body and "passphrase" not in body
    assert_masked(caplog.text)
    connection = ExchangeConnection.objects.get()
    assert_masked(str(connection) + repr(connection))


def test_admin_pages_mask_the_key(client, user):
    connection = services.connection_create(
        user=user, exchange="okx", label="a", api_key=API_KEY, api_secret=SECRET, passphrase=PASSPHRASE
    )
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    pages = [
        reverse("admin:exchanges_exchangeconnection_changelist"),
        reverse("admin:exchanges_exchangeconnection_change", args=[connection.pk]),
    ]
    for page in pages:
        html = client.get(page).content.decode()
        assert_masked(html)
        assert API_KEY[-4:] in html


def test_admin_edit_with_blank_credentials_keeps_them(client, user):
    connection = services.connection_create(
        user=user, exchange="binance", label="a", api_key=API_KEY, api_secret=SECRET
    )
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:exchanges_exchangeconnection_change", args=[connection.pk])
    response = client.post(
        url,
        {"user": user.pk, "exchange": "binance", "label": "renamed", "status": "untested",
         "new_api_key": "", "new_api_secret": "", "new_passphrase": ""},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    connection.refresh_from_db()
    assert connection.label == "renamed" and connection.api_secret == SECRET and connection.api_key == API_KEY


# ------------------------------------------------------------ scoping, input
def test_another_users_connection_is_a_404(auth_client, other_user):
    theirs = services.connection_create(
        user=other_user, exchange="binance", label="theirs", api_key=API_KEY, api_secret=SECRET
    )
    for method, suffix in (
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "test/"),
        ("get", "balance/"),
    ):
        response = getattr(auth_client, method)(f"{URL}{theirs.pk}/{suffix}", {}, format="json")
        assert_error(response, 404, "not_found")
    assert auth_client.get(URL).json()["results"] == []
    theirs.refresh_from_db()
    assert theirs.deleted_at is None and theirs.label == "theirs"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"exchange": "mtgox"}, "exchange"),
        ({"api_secret": ""}, "api_secret"),
        ({"api_key": "  "}, "api_key"),
        ({"exchange": "okx"}, "passphrase"),
        ({"exchange": "kraken", "testnet": True}, "testnet"),
    ],
)
def test_bad_input_is_a_400_with_a_message(auth_client, overrides, field):
    response = create(auth_client, **overrides)
    assert_error(response, 400, "invalid", field)
    assert_masked(response.content.decode())
    assert ExchangeConnection.objects.count() == 0


def test_missing_secret_field_entirely_is_a_400(auth_client):
    response = auth_client.post(URL, {"exchange": "binance", "api_key": API_KEY}, format="json")
    assert_error(response, 400, "invalid", "api_secret")


def test_duplicate_label_is_a_409_and_exchange_cannot_change(auth_client):
    pk = create(auth_client).json()["id"]
    assert_error(create(auth_client), 409, "conflict")
    response = auth_client.patch(f"{URL}{pk}/", {"exchange": "okx"}, format="json")
    assert_error(response, 400, "invalid", "exchange")


def test_soft_delete_hides_the_connection_but_keeps_the_row(auth_client):
    pk = create(auth_client).json()["id"]
    assert auth_client.delete(f"{URL}{pk}/").status_code == 204
    assert_error(auth_client.get(f"{URL}{pk}/"), 404, "not_found")
    assert auth_client.get(URL).json()["count"] == 0
    row = ExchangeConnection.objects.get(pk=pk)
    assert row.deleted_at is not None
    assert create(auth_client).status_code == 201  # the label is free again


def test_updating_credentials_resets_the_status(auth_client):
    pk = create(auth_client).json()["id"]
    ExchangeConnection.objects.filter(pk=pk).update(status="connected")
    response = auth_client.patch(f"{URL}{pk}/", {"api_secret": "new-secret-value-123456"}, format="json")
    assert response.json()["status"] == "untested"
    assert ExchangeConnection.objects.get(pk=pk).api_secret == "new-secret-value-123456"
    assert "new-secret-value-123456" not in response.content.decode()


# ------------------------------------------------------------ live test endpoint
@pytest.fixture
def fake(settings):
    with FakeBinance() as server:
        settings.MARKETDATA_API_OVERRIDES = server.overrides()
        yield server


def test_test_endpoint_connects_and_records_permissions(auth_client, fake):
    account = BinanceAccount(fake).install()
    pk = create(auth_client).json()["id"]
    response = auth_client.post(f"{URL}{pk}/test/")
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True
    assert body["connection"]["status"] == "connected"
    assert body["connection"]["permissions"] == ["spot"]
    assert body["connection"]["warnings"] == []
    account.restrictions["enableWithdrawals"] = True
    body = auth_client.post(f"{URL}{pk}/test/").json()
    assert "withdraw" in body["connection"]["permissions"]
    assert "withdraw" in body["connection"]["warnings"][0]
    assert ExchangeConnection.objects.get(pk=pk).last_checked_at is not None
    balance = auth_client.get(f"{URL}{pk}/balance/").json()
    assert {"asset": "BTC", "free": "0.5", "used": "0.1", "total": "0.6"} in balance["balances"]


def test_test_endpoint_reports_a_rejected_key_without_leaking_it(auth_client, fake):
    BinanceAccount(fake, api_key="some-other-key-entirely").install()
    pk = create(auth_client).json()["id"]
    response = auth_client.post(f"{URL}{pk}/test/")
    body = response.json()
    assert response.status_code == 200 and body["ok"] is False
    assert body["connection"]["status"] == "error" and body["connection"]["last_error"]
    assert_masked(response.content.decode())
    balance = auth_client.get(f"{URL}{pk}/balance/")
    assert_error(balance, 400, "authentication_failed")
    assert_masked(balance.content.decode())


def test_test_endpoint_reports_an_unreachable_exchange(auth_client, fake):
    BinanceAccount(fake).install()
    fake.fail("GET", "/api/v3/exchangeInfo", drop=True, times=10)
    pk = create(auth_client).json()["id"]
    body = auth_client.post(f"{URL}{pk}/test/").json()
    assert body["ok"] is False and body["connection"]["status"] == "disconnected"


def test_supported_exchanges_list_has_help(auth_client):
    results = auth_client.get("/api/v1/exchanges/supported/").json()["results"]
    okx = next(r for r in results if r["id"] == "okx")
    assert okx["needs_passphrase"] is True and okx["help"]


# ------------------------------------------------------------------ paper API
def make_bot(owner, name="paper bot"):
    from apps.bots.models import Bot

    return Bot.objects.create(
        owner=owner, name=name, strategy="sma_cross", exchange="binance", symbol="BTC/USDT", timeframe="1h"
    )


def test_paper_account_balances_and_reset(auth_client, user, other_user):
    account = auth_client.get("/api/v1/exchanges/paper/").json()
    assert account["balances"] == [{"asset": "USDT", "free": "10000", "used": "0", "total": "10000"}]
    response = auth_client.post(
        "/api/v1/exchanges/paper/reset/", {"balances": {"usdt": "2500.5", "BTC": "0.25"}}, format="json"
    )
    assert response.status_code == 200
    assets = {b["asset"]: b["free"] for b in response.json()["balances"]}
    assert assets == {"BTC": "0.25", "USDT": "2500.5"}
    again = auth_client.post("/api/v1/exchanges/paper/reset/", {}, format="json").json()
    assert {b["asset"]: b["free"] for b in again["balances"]} == assets  # back to the new initial
    bot_id = make_bot(user).pk
    bot = auth_client.get(f"/api/v1/exchanges/paper/?bot_id={bot_id}").json()
    assert bot["bot_id"] == bot_id and bot["balances"][0]["free"] == "10000"
    other = services.paper_account_get_or_create(user=other_user)
    assert other.pk not in (account["id"], bot["id"])


def test_paper_reset_switches_the_account_to_futures(auth_client):
    response = auth_client.post(
        "/api/v1/exchanges/paper/reset/",
        {"balances": {"USDT": "5000"}, "market_type": "futures", "funding_rate": "0.0001"},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["market_type"] == "futures" and Decimal(body["funding_rate"]) == Decimal("0.0001")
    assert body["positions"] == []
    back = auth_client.post("/api/v1/exchanges/paper/reset/", {"market_type": "spot"}, format="json").json()
    assert back["market_type"] == "spot" and Decimal(back["funding_rate"]) == Decimal("0.0001")


def test_paper_reset_lists_every_bad_setting(auth_client):
    response = auth_client.post(
        "/api/v1/exchanges/paper/reset/", {"market_type": "options", "funding_rate": "0.5"}, format="json"
    )
    assert_error(response, 400, "invalid")
    assert set(response.json()["error"]["fields"]) == {"market_type", "funding_rate"}


@pytest.mark.parametrize(
    "body",
    [
        {"balances": {"USDT": "-5"}},
        {"balances": {"USDT": "abc"}},
        {"balances": {}},
        {"balances": {"US DT": "1"}},
    ],
)
def test_paper_reset_rejects_bad_balances(auth_client, body):
    response = auth_client.post("/api/v1/exchanges/paper/reset/", body, format="json")
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize("bot_id", ["x", "0", "-1", "9223372036854775808", "1e3"])
def test_paper_bad_bot_id_is_a_400(auth_client, bot_id):
    response = auth_client.get(f"/api/v1/exchanges/paper/?bot_id={bot_id}")
    assert response.status_code == 400 and "bot_id" in response.json()["error"]["fields"]
    response = auth_client.post("/api/v1/exchanges/paper/reset/", {"bot_id": bot_id}, format="json")
    assert response.status_code == 400 and "bot_id" in response.json()["error"]["fields"]


def test_a_paper_account_for_a_bot_that_is_not_the_users_is_404_and_never_created(auth_client, other_user):
    from apps.exchanges.models import PaperAccount

    others_bot = make_bot(other_user).pk
    for bot_id in (others_bot, others_bot + 1000):
        response = auth_client.get(f"/api/v1/exchanges/paper/?bot_id={bot_id}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        response = auth_client.post("/api/v1/exchanges/paper/reset/", {"bot_id": bot_id}, format="json")
        assert response.status_code == 404
    assert not PaperAccount.objects.filter(bot_id__isnull=False).exists()


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        (
            "post",
            URL,
            {"exchange": "binance", "label": "a", "api_key": "k", "api_secret": "s", "colour": "red"},
        ),
        ("post", "/api/v1/exchanges/paper/reset/", {"balances": {"USDT": "1"}, "everything": True}),
    ],
)
def test_unknown_fields_are_refused(auth_client, method, url, body):
    response = getattr(auth_client, method)(url, body, format="json")
    assert response.status_code == 400, response.content
    unknown = (set(body) - {"exchange", "label", "api_key", "api_secret", "balances"}).pop()
    assert response.json()["error"]["fields"][unknown] == ["Unknown field."]


@pytest.mark.parametrize("body", ["5", "null", "[]", '"text"'])
@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_non_object_body_on_a_connection_update_is_a_400(auth_client, method, body):
    pk = ExchangeConnection.objects.create(
        user=auth_client.handler._force_user, exchange="binance", label="a", api_key="k", api_secret="s"
    ).pk
    response = getattr(auth_client, method)(f"{URL}{pk}/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("invalid", "parse_error")


def test_api_needs_authentication(api_client):
    assert_error(api_client.get(URL), 401, "not_authenticated")
    assert_error(api_client.get("/api/v1/exchanges/paper/"), 401, "not_authenticated")


def test_system_check_flags_credentials_the_keys_cannot_decrypt(user, settings):
    from apps.exchanges.checks import stored_credentials_decrypt

    services.connection_create(user=user, exchange="binance", label="a", api_key=API_KEY, api_secret=SECRET)
    assert stored_credentials_decrypt(databases=["default"]) == []
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    (error,) = stored_credentials_decrypt(databases=["default"])
    assert error.id == "exchanges.E001" and SECRET not in error.msg + error.hint


def test_test_endpoint_gives_up_after_its_deadline(auth_client, fake, monkeypatch):
    BinanceAccount(fake).install()
    monkeypatch.setattr(services, "TEST_TIMEOUT_SECONDS", 1)
    fake.route("GET", "/api/v3/account", lambda request: FakeResponse(200, {}, delay=3))
    pk = create(auth_client).json()["id"]
    body = auth_client.post(f"{URL}{pk}/test/").json()
    assert body["ok"] is False and body["connection"]["status"] == "disconnected"
    assert "within 1 s" in body["message"]
