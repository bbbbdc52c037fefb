"""Frozen settings built from a mapping (the environment, a `.env` file, CLI flags).

Tests pass plain dicts. Everything that later reaches SQL text (slot, publication, table
names) is validated here, before any connection is opened.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg.conninfo

from streamer.errors import ConfigError

NAME_RE = re.compile(r"^[a-z0-9_]{1,63}$")
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")

DEFAULT_BATCH_SIZE = 10000
DEFAULT_BATCH_TIMEOUT_MS = 100
MODES = ("slot", "poll", "files")
STREAMING_CHOICES = ("auto", "on", "off")  # pgoutput protocol 2 streaming of large txns
DEFAULT_POLL_INTERVAL_S = 43200  # the legacy poller's twice a day
DEFAULT_POLL_OVERLAP_S = 300
DEFAULT_FILES_WORKERS = 4
DEFAULT_FILES_MAX_BYTES = 256 * 1024 * 1024
SLOT_FAILOVER = ("auto", "on", "off")  # auto: on when the source runs PostgreSQL 17+
COPY_FORMATS = ("auto", "text")  # auto: binary COPY where the values and column types allow
DEFAULT_FILES_LOOKBACK_DAYS = 2
TRUE_WORDS = ("1", "true", "yes", "on")

# env name -> (fallback env name or None)
ENV_FALLBACKS: Mapping[str, str] = {
    "SOURCE_DATABASE_URL": "DATALAKE_DATABASE_URL",
    "TARGET_DATABASE_URL": "DATABASE_URL",
}


def normalize_url(url: str, what: str) -> str:
    """Accept libpq URLs and SQLAlchemy `postgresql+psycopg://` URLs; return a libpq one."""
    url = url.strip()
    url = re.sub(r"^postgres(?:ql)?\+[a-z0-9_]+://", "postgresql://", url)
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigError(
            f"{what} is not a valid PostgreSQL URL or conninfo string",
            hint="use the form postgresql://user@host:5432/dbname",
        ) from None
    hosts = str(params.get("host") or "").split(",")
    ports = str(params.get("port") or "").split(",")
    if len(ports) > 1 and len(ports) != len(hosts):
        raise ConfigError(
            f"{what} lists {len(hosts)} hosts but {len(ports)} ports",
            hint="give one port for all hosts or one per host: postgresql://h1:5432,h2:5432/db",
        )
    return url


def url_hosts(url: str) -> list[str]:
    """The configured `host:port` of every server a (multi-host) URL names, in order.

    libpq's lists: `h1,h2` with one port for all or one port each."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return []
    hosts = str(params.get("host") or "localhost").split(",")
    ports = str(params.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports *= len(hosts)
    return [f"{h or 'localhost'}:{p or '5432'}" for h, p in zip(hosts, ports, strict=False)]


def describe_url(url: str) -> str:
    """`user@host:port[,host:port]/dbname` for messages; never includes the password."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<invalid url>"
    user = str(params.get("user") or "")
    db = str(params.get("dbname") or user)
    return f"{user + '@' if user else ''}{','.join(url_hosts(url))}/{db}"


def _redacted(url: str | None) -> str:
    return "None" if url is None else repr(describe_url(url))


def split_table(name: str, what: str) -> tuple[str, str]:
    """`schema.table` or `table` (schema public) → validated (schema, table)."""
    parts = name.split(".")
    if len(parts) == 1:
        parts = ["public", parts[0]]
    if len(parts) != 2 or not all(IDENT_RE.match(p) for p in parts):
        raise ConfigError(
            f"{what} {name[:80]!r} is not a plain [schema.]table name",
            hint="use letters, digits and underscores only",
        )
    return parts[0], parts[1]


def _validate_name(value: str, what: str) -> str:
    if not NAME_RE.match(value):
        raise ConfigError(
            f"{what} {value[:80]!r} is invalid",
            hint="use 1-63 lower-case letters, digits or underscores",
        )
    return value


def _int(value: Any, what: str, minimum: int, maximum: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{what} must be an integer, got {str(value)[:40]!r}") from None
    if not minimum <= number <= maximum:
        raise ConfigError(f"{what} must be between {minimum} and {maximum}, got {number}")
    return number


def _choice(value: Any, what: str, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}, got {str(value)[:40]!r}")
    return text


@dataclass(frozen=True)
class Settings:
    """Validated configuration. `repr` never shows passwords."""

    source_url: str | None = field(repr=False)
    target_url: str | None = field(repr=False)
    slot: str = "streamer"
    publication: str = "streamer"
    source_schema: str = "public"
    source_table: str = "raw_transactions"
    target_schema: str = "public"
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_timeout_ms: int = DEFAULT_BATCH_TIMEOUT_MS
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9188
    pushgateway_url: str | None = None
    metrics_textfile: str | None = None
    mode: str = "slot"  # how `run` reads the source: replication slot, or polling SELECTs
    poll_interval_seconds: int = DEFAULT_POLL_INTERVAL_S
    poll_overlap_seconds: int = DEFAULT_POLL_OVERLAP_S
    streaming: str = "auto"  # auto: on when the source supports it (PostgreSQL 14+)
    files_url: str | None = None  # files mode: s3://bucket/prefix/
    files_workers: int = DEFAULT_FILES_WORKERS
    files_max_bytes: int = DEFAULT_FILES_MAX_BYTES
    files_full_relist: bool = False
    slot_failover: str = "auto"
    copy_format: str = "auto"
    files_lookback_days: int = DEFAULT_FILES_LOOKBACK_DAYS  # partitions re-listed
    files_sqs_url: str | None = None  # S3 event notifications, for early cycles

    def __repr__(self) -> str:
        return (
            f"Settings(source={_redacted(self.source_url)}, target={_redacted(self.target_url)}, "
            f"slot={self.slot!r}, publication={self.publication!r}, "
            f"source_table={self.source_schema}.{self.source_table}, "
            f"target_schema={self.target_schema!r}, batch_size={self.batch_size}, "
            f"batch_timeout_ms={self.batch_timeout_ms}, slot_failover={self.slot_failover!r})"
        )

    @property
    def qualified_source_table(self) -> str:
        return f"{self.source_schema}.{self.source_table}"

    def require_urls(self) -> tuple[str, str]:
        """Both URLs, or a usage error naming the missing variable."""
        if not self.source_url:
            raise ConfigError(
                "the source database is not configured",
                hint="set SOURCE_DATABASE_URL (or DATALAKE_DATABASE_URL) or pass --source",
            )
        return self.source_url, self.require_target()

    def require_target(self) -> str:
        """The target URL (all files mode needs), or a usage error."""
        if not self.target_url:
            raise ConfigError(
                "the target database is not configured",
                hint="set TARGET_DATABASE_URL (or DATABASE_URL) or pass --target",
            )
        return self.target_url

    def require_files(self) -> tuple[str, str]:
        """(files URL, target URL) for files mode, or a usage error."""
        if not self.files_url:
            raise ConfigError(
                "--mode files needs the bucket and prefix to read",
                hint="set STREAMER_FILES_URL or pass --files-url s3://bucket/prefix/",
            )
        return self.files_url, self.require_target()


def lookup(env: Mapping[str, str], name: str) -> str | None:
    """Env value with the documented fallback variable; empty strings count as unset."""
    value = env.get(name) or None
    if value is None and name in ENV_FALLBACKS:
        value = env.get(ENV_FALLBACKS[name]) or None
    return value


def load_settings(env: Mapping[str, str], flags: Mapping[str, Any] | None = None) -> Settings:
    """Build Settings: flags (when not None) override env, env overrides defaults."""
    flags = flags or {}

    def pick(flag: str, env_name: str, default: Any = None) -> Any:
        value = flags.get(flag)
        if value is None:
            value = lookup(env, env_name)
        return default if value is None else value

    source = pick("source", "SOURCE_DATABASE_URL")
    target = pick("target", "TARGET_DATABASE_URL")
    schema, table = split_table(
        pick("source_table", "STREAMER_SOURCE_TABLE", "public.raw_transactions"),
        "source table",
    )
    files_url = pick("files_url", "STREAMER_FILES_URL")
    if files_url:
        from streamer.sources.files.s3 import parse_files_url  # noqa: PLC0415

        parse_files_url(files_url)
    target_schema = pick("target_schema", "STREAMER_TARGET_SCHEMA", "public")
    if not IDENT_RE.match(target_schema):
        raise ConfigError(f"target schema {target_schema[:80]!r} is not a plain identifier")
    return Settings(
        source_url=normalize_url(source, "the source URL") if source else None,
        target_url=normalize_url(target, "the target URL") if target else None,
        slot=_validate_name(pick("slot", "STREAMER_SLOT", "streamer"), "slot name"),
        publication=_validate_name(
            pick("publication", "STREAMER_PUBLICATION", "streamer"), "publication name"
        ),
        source_schema=schema,
        source_table=table,
        target_schema=target_schema,
        batch_size=_int(
            pick("batch_size", "STREAMER_BATCH_SIZE", DEFAULT_BATCH_SIZE),
            "batch size",
            1,
            1_000_000,
        ),
        batch_timeout_ms=_int(
            pick("batch_timeout_ms", "STREAMER_BATCH_TIMEOUT_MS", DEFAULT_BATCH_TIMEOUT_MS),
            "batch timeout (ms)",
            1,
            3_600_000,
        ),
        metrics_host=pick("metrics_host", "STREAMER_METRICS_HOST", "127.0.0.1"),
        metrics_port=_int(
            pick("metrics_port", "STREAMER_METRICS_PORT", 9188), "metrics port", 0, 65535
        ),
        pushgateway_url=pick("pushgateway", "STREAMER_PUSHGATEWAY_URL"),
        metrics_textfile=pick("metrics_textfile", "STREAMER_METRICS_TEXTFILE"),
        mode=_choice(pick("mode", "STREAMER_MODE", "slot"), "mode", MODES),
        slot_failover=_choice(
            pick("slot_failover", "STREAMER_SLOT_FAILOVER", "auto"), "slot failover", SLOT_FAILOVER
        ),
        copy_format=_choice(
            pick("copy_format", "STREAMER_COPY_FORMAT", "auto"), "COPY format", COPY_FORMATS
        ),
        poll_interval_seconds=_int(
            pick("poll_interval", "POLL_INTERVAL_SECONDS", DEFAULT_POLL_INTERVAL_S),
            "poll interval (seconds)",
            1,
            31 * 86400,
        ),
        poll_overlap_seconds=_int(
            pick("poll_overlap", "STREAMER_POLL_OVERLAP_SECONDS", DEFAULT_POLL_OVERLAP_S),
            "poll overlap (seconds)",
            0,
            31 * 86400,
        ),
        streaming=_choice(
            pick("streaming", "STREAMER_STREAMING", "auto"), "streaming", STREAMING_CHOICES
        ),
        files_url=files_url,
        files_workers=_int(
            pick("workers", "STREAMER_FILES_WORKERS", DEFAULT_FILES_WORKERS), "workers", 1, 64
        ),
        files_max_bytes=_int(
            pick("max_file_bytes", "STREAMER_FILES_MAX_BYTES", DEFAULT_FILES_MAX_BYTES),
            "max file bytes",
            1,
            2**40,
        ),
        files_full_relist=bool(flags.get("full_relist"))
        or str(lookup(env, "STREAMER_FILES_FULL_RELIST") or "").strip().lower() in TRUE_WORDS,
        files_lookback_days=_int(
            pick("lookback_days", "STREAMER_FILES_LOOKBACK_DAYS", DEFAULT_FILES_LOOKBACK_DAYS),
            "lookback days",
            0,
            3650,
        ),
        files_sqs_url=_sqs_url(pick("sqs_queue_url", "STREAMER_FILES_SQS_URL")),
    )


def _sqs_url(value: str | None) -> str | None:
    """An SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>) or None."""
    if not value:
        return None
    text = value.strip()
    if not re.match(r"^https?://[^/\s]+/\S+$", text):
        raise ConfigError(
            "--sqs-queue-url is not a queue URL",
            hint="use the form https://sqs.<region>.amazonaws.com/<account>/<queue>",
        )
    return text
