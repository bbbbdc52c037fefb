import pytest

from streamer.config import Settings, describe_url, load_settings, url_hosts
from streamer.errors import ConfigError

SRC = "postgresql://lake:s3cr3t-canary@db.example:5433/payments_lake"
DST = "postgresql+psycopg://app:an0ther-canary@app.example/payments"


def test_defaults_and_env() -> None:
    s = load_settings({"SOURCE_DATABASE_URL": SRC, "TARGET_DATABASE_URL": DST})
    assert (s.slot, s.publication, s.target_schema) == ("streamer", "streamer", "public")
    assert (s.source_schema, s.source_table) == ("public", "raw_transactions")
    assert s.target_url == "postgresql://app:an0ther-canary@app.example/payments"
    assert s.batch_size > 0 and s.batch_timeout_ms > 0
    assert (s.metrics_host, s.metrics_port) == ("127.0.0.1", 9188)


def test_fallback_variables_from_the_seed() -> None:
    s = load_settings({"DATALAKE_DATABASE_URL": SRC, "DATABASE_URL": DST})
    assert s.require_urls()[0] == SRC


def test_primary_variable_wins_over_fallback() -> None:
    s = load_settings({"SOURCE_DATABASE_URL": SRC, "DATALAKE_DATABASE_URL": "postgresql://x/y"})
    assert s.source_url == SRC


def test_flags_override_env_including_zero() -> None:
    env = {"STREAMER_SLOT": "from_env", "STREAMER_METRICS_PORT": "9999"}
    s = load_settings(env, {"slot": "from_flag", "metrics_port": 0, "batch_size": "7"})
    assert (s.slot, s.metrics_port, s.batch_size) == ("from_flag", 0, 7)


@pytest.mark.parametrize("slot", ['x"; DROP TABLE t;--', "x' , 'y", "Ünïcode", "UPPER", "a" * 64])
def test_injection_and_invalid_slot_names_are_refused(slot: str) -> None:
    with pytest.raises(ConfigError):
        load_settings({"STREAMER_SLOT": slot})
    with pytest.raises(ConfigError):
        load_settings({"STREAMER_PUBLICATION": slot})


@pytest.mark.parametrize("table", ['raw"; DROP TABLE x;--', "a.b.c", "1abc", "sch.ta-ble"])
def test_invalid_table_names_are_refused(table: str) -> None:
    with pytest.raises(ConfigError):
        load_settings({"STREAMER_SOURCE_TABLE": table})


def test_schema_qualified_table() -> None:
    s = load_settings({"STREAMER_SOURCE_TABLE": "lake.raw_tx"})
    assert (s.source_schema, s.source_table) == ("lake", "raw_tx")


@pytest.mark.parametrize("value", ["abc", "0", "-5"])
def test_batch_size_validated(value: str) -> None:
    with pytest.raises(ConfigError):
        load_settings({"STREAMER_BATCH_SIZE": value})


def test_missing_urls_are_usage_errors_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="TARGET_DATABASE_URL") as info:
        load_settings({"SOURCE_DATABASE_URL": SRC}).require_urls()
    assert info.value.exit_code == 2


def test_bad_url_is_a_usage_error() -> None:
    with pytest.raises(ConfigError):
        load_settings({"SOURCE_DATABASE_URL": "postgresql://a:b@h:notaport/x?bogus=1"})


def test_passwords_never_in_repr_or_descriptions() -> None:
    s = load_settings({"SOURCE_DATABASE_URL": SRC, "TARGET_DATABASE_URL": DST})
    text = repr(s) + str(s) + describe_url(SRC) + describe_url(s.target_url or "")
    assert "canary" not in text
    assert "db.example:5433/payments_lake" in text


def test_settings_are_frozen() -> None:
    s = Settings(source_url=None, target_url=None)
    with pytest.raises(AttributeError):
        s.slot = "other"  # type: ignore[misc]


def test_multi_host_source_urls_are_accepted_and_described_without_password() -> None:
    url = "postgresql://lake:s3cr3t-canary@h1:5432,h2:5433/lake?target_session_attrs=read-write"
    s = load_settings({"SOURCE_DATABASE_URL": url})
    assert s.source_url == url
    assert describe_url(url) == "lake@h1:5432,h2:5433/lake"
    assert url_hosts(url) == ["h1:5432", "h2:5433"]
    assert url_hosts("postgresql://h1,h2:6000/db") == ["h1:5432", "h2:6000"]
    assert url_hosts("host=h1,h2 port=6000") == ["h1:6000", "h2:6000"]
    assert "canary" not in repr(s)


def test_a_host_list_with_a_mismatched_port_list_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="3 hosts but 2 ports"):
        load_settings({"SOURCE_DATABASE_URL": "host=a,b,c port=1,2 dbname=db"})


def test_slot_failover_setting() -> None:
    assert load_settings({}).slot_failover == "auto"
    assert load_settings({"STREAMER_SLOT_FAILOVER": "OFF"}).slot_failover == "off"
    assert (
        load_settings({"STREAMER_SLOT_FAILOVER": "off"}, {"slot_failover": "on"}).slot_failover
        == "on"
    )
    with pytest.raises(ConfigError, match="slot failover must be one of auto, on, off"):
        load_settings({"STREAMER_SLOT_FAILOVER": "yes"})


def test_copy_format_setting() -> None:
    assert load_settings({}).copy_format == "auto"
    assert load_settings({"STREAMER_COPY_FORMAT": "TEXT"}).copy_format == "text"
    assert load_settings({}, {"copy_format": "text"}).copy_format == "text"
    with pytest.raises(ConfigError, match="COPY format must be one of auto, text"):
        load_settings({"STREAMER_COPY_FORMAT": "binary"})


QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/lake-events"


def test_files_extras_from_env_and_flags() -> None:
    s = load_settings({})
    assert (s.files_sqs_url, s.files_lookback_days, s.files_full_relist) == (None, 2, False)
    env = {
        "STREAMER_FILES_SQS_URL": QUEUE,
        "STREAMER_FILES_LOOKBACK_DAYS": "7",
        "STREAMER_FILES_FULL_RELIST": "true",
    }
    s = load_settings(env)
    assert (s.files_sqs_url, s.files_lookback_days, s.files_full_relist) == (QUEUE, 7, True)
    s = load_settings({"STREAMER_FILES_FULL_RELIST": "0"}, {"lookback_days": "0"})
    assert (s.files_lookback_days, s.files_full_relist) == (0, False)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAMER_FILES_SQS_URL": "lake-events"}, "not a queue URL"),
        ({"STREAMER_FILES_LOOKBACK_DAYS": "-1"}, "lookback days"),
    ],
)
def test_files_extras_validated(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)
