"""Every setting goapp has, in one typed table.

The :class:`Settings` dataclass *is* the table: each field carries its type, default, help
text, whether it is a secret, and a validator. ``goapp --help``, ``goapp settings`` and
``docs/configuration.md`` are generated from it (a test keeps the docs in step).

Where values come from, lowest priority first:

1. the defaults below;
2. a TOML file (``--config FILE`` or ``GOAPP_CONFIG``), keys named as the settings
   (``port = 4000``); unknown keys are an error, so typos do not pass silently;
3. environment variables ``GOAPP_<NAME>`` (``GOAPP_PORT=8080``);
4. for secrets, ``GOAPP_<NAME>_FILE``: the value is read from that file (systemd's
   ``LoadCredential=`` and Docker secrets deliver secrets as files);
5. command-line flags (``goapp serve --port 8080``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "GOAPP_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names where it came from."""


# -- validators -------------------------------------------------------------------------------


def _port(value: Any) -> None:
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port between 0 and 65535")


def _positive(value: Any) -> None:
    if value <= 0:
        raise ValueError("must be greater than 0")


def _not_negative(value: Any) -> None:
    if value < 0:
        raise ValueError("must be 0 or more")


def _networks(value: Any) -> None:
    import ipaddress

    for part in str(value).split(","):
        if part.strip():
            try:
                ipaddress.ip_network(part.strip(), strict=False)
            except ValueError as exc:
                raise SettingsError(f"not an address or network: {part.strip()!r}") from exc


def listen_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) as (host, port); raises ``ValueError``."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be HOST:PORT (127.0.0.1:9464, [::1]:9464) or empty")
    return host, int(port)


def _listen_or_empty(value: Any) -> None:
    if value:
        listen_address(value)


def _token_or_empty(value: Any) -> None:
    if value and len(value) < 32:
        raise ValueError("must be at least 32 characters (openssl rand -hex 32)")


def _one_of(*choices: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")

    return check


def _url_or_empty(*schemes: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value and not value.startswith(tuple(f"{s}:" for s in schemes)):
            raise ValueError(f"must start with {' or '.join(s + ':' for s in schemes)}")

    return check


def setting(
    default: Any,
    help: str,
    *,
    secret: bool = False,
    validator: Callable[[Any], None] | None = None,
) -> Any:
    """Declare one setting (a dataclass field with its documentation attached)."""
    return field(default=default, metadata={"help": help, "secret": secret, "validator": validator})


@dataclass(frozen=True, slots=True)
class Settings:
    """The effective configuration of one goapp process."""

    host: str = setting("127.0.0.1", "Address the server listens on.")
    port: int = setting(4000, "HTTP port.", validator=_port)
    data_dir: Path = setting(  # noqa: RUF009 (a Path is immutable)
        Path("data"), "Directory for the SQLite database and other files the server keeps."
    )
    database_url: str = setting(
        "",
        "Database URL: sqlite:///ABS/PATH.db or postgresql://USER@HOST/DB. "
        "Empty means SQLite at DATA_DIR/goapp.db.",
        secret=True,
        validator=_url_or_empty("sqlite", "postgresql", "postgres"),
    )
    sqlite_synchronous: str = setting(
        "FULL",
        "SQLite durability: FULL survives power loss after an acknowledged write; NORMAL "
        "survives application crashes but may lose the last commits on power loss.",
        validator=_one_of("FULL", "NORMAL"),
    )
    ws_port: int = setting(
        4001,
        "Dedicated WebSocket port (0 disables it; /ws on the HTTP port always works).",
        validator=_port,
    )
    trusted_proxies: str = setting(
        "",
        "Comma-separated addresses or networks of reverse proxies (e.g. 127.0.0.1 for Nginx on"
        " the same box) whose X-Forwarded-For is believed: per-IP rate limits then see the"
        " client's address instead of the proxy's. Empty: the header is ignored.",
        validator=_networks,
    )
    site_url: str = setting(
        "",
        "Public origin of the site (https://go.example.org). WebSocket upgrades whose Origin "
        "differs are refused. Empty means http://localhost:PORT and http://127.0.0.1:PORT.",
        validator=_url_or_empty("http", "https"),
    )
    jwt_secret: str = setting(
        "",
        "Secret that signs access tokens (at least 32 bytes; hex from `openssl rand -hex 32`). "
        "Empty: generated on first start and kept in DATA_DIR/jwt_secret, mode 0600.",
        secret=True,
    )
    access_token_ttl: int = setting(
        900, "Lifetime of an access token, in seconds.", validator=_positive
    )
    refresh_token_ttl: int = setting(
        30 * 24 * 3600,
        "Lifetime of a refresh token (how long a login lasts unused), in seconds.",
        validator=_positive,
    )
    engine: str = setting(
        "auto",
        "Which engine plays and analyses: auto (remote if engine_url is set, else KataGo if "
        "a binary and model are found, else GNU Go if `gnugo` is on the PATH), katago, gnugo, "
        "remote or none.",
        validator=_one_of("auto", "katago", "gnugo", "remote", "none"),
    )
    katago_binary: str = setting(
        "",
        "KataGo binary. Empty: the installation made by `goapp engine setup` in "
        "DATA_DIR/katago, else in ./.katago. Either way KataGo's OpenCL tuning and driver "
        "caches go under DATA_DIR/katago (or the installation's folder), never under $HOME.",
    )
    katago_model: str = setting(
        "",
        "KataGo model (.bin.gz). Empty: the newest model in the installation's models/ folder.",
    )
    katago_config: str = setting(
        "", "KataGo analysis config. Empty: the analysis.cfg packaged with goapp."
    )
    engine_url: str = setting(
        "",
        "URL of a remote engine (`goapp engine serve` on another machine, "
        "http://gpu-box:4100). Set, it is used instead of a local KataGo.",
        validator=_url_or_empty("http", "https"),
    )
    engine_secret: str = setting(
        "",
        "Shared secret of the remote engine (Authorization: Bearer), at least 16 characters "
        "(`openssl rand -hex 32`). Unset, `goapp engine serve` makes one in "
        "DATA_DIR/engine_secret (mode 0600) and serves with it; the game servers need the "
        "same value.",
        secret=True,
    )
    estimate_queue: int = setting(
        4,
        "Score estimates (GET /api/games/{id}/estimate) that may wait for the engine while "
        "one runs; more are answered 503 engine_busy at once. Estimates always queue behind "
        "bot moves.",
        validator=_positive,
    )
    redis_url: str = setting(
        "",
        "Redis URL (redis://HOST:6379/0) shared by every instance of a multi-instance "
        "deployment: game events, lobby, chat, presence, rate limits and token revocations "
        "cross instances through it. Empty: a single instance (in-process fan-out only). "
        "See docs/scaling.md.",
        secret=True,
        validator=_url_or_empty("redis", "rediss", "unix"),
    )
    instance_id: str = setting(
        "",
        "Name of this instance among several (logs, presence, leases). Empty: HOSTNAME-PID.",
    )
    metrics_listen: str = setting(
        "127.0.0.1:9464",
        "Address (HOST:PORT) of the Prometheus listener, which serves /metrics and nothing "
        "else. Keep it on loopback or a private network. Empty: no metrics listener. The HTTP "
        "port answers 404 for /metrics unless metrics_token is set.",
        validator=_listen_or_empty,
    )
    metrics_token: str = setting(
        "",
        "Bearer token for /metrics (at least 32 characters). Set, /metrics is also served on "
        "the HTTP port, and every scrape, on either port, must send Authorization: Bearer "
        "TOKEN. Empty: no token, and /metrics only on metrics_listen.",
        secret=True,
        validator=_token_or_empty,
    )
    log_level: str = setting(
        "info", "Log level.", validator=_one_of("debug", "info", "warning", "error")
    )
    log_format: str = setting(
        "json",
        "Log format: one JSON object a line, or text for humans.",
        validator=_one_of("json", "text"),
    )
    # fair play (docs/game-lifecycle.md)
    abandon_timeout_s: int = setting(
        60,
        "Seconds a player of a live game may be disconnected before the opponent can claim "
        "the win (claim_victory). Not for correspondence games.",
        validator=_positive,
    )
    scoring_timeout_s: int = setting(
        180,
        "Longest scoring phase, in seconds: when the players have not both accepted by then, "
        "the game ends with the current marking scored.",
        validator=_positive,
    )
    # automatch (docs/api.md, "Automatch")
    automatch_interval_s: float = setting(
        2.0,
        "Seconds between re-examinations of waiting automatch requests (their rating range "
        "widens as they wait). Every instance runs it; claims are conditional, so that is "
        "safe. 0: off (requests are then paired only when posted).",
    )
    automatch_offline_cancel_s: int = setting(
        60,
        "Seconds a blitz or live automatch request may wait while its player has no "
        "connection before it is cancelled. 0: never. Correspondence requests are never "
        "cancelled this way.",
    )
    # abuse limits (docs/api.md, "Limits"; 0 turns a cap off)
    max_open_challenges: int = setting(
        10,
        "Open challenges one user may have at once (public and direct); one more is refused "
        "with 409 too_many_challenges. 0: no cap.",
        validator=_not_negative,
    )
    max_bot_games: int = setting(
        3,
        "Games against the computer one user may have in progress at once; one more is "
        "refused with 409 too_many_bot_games. 0: no cap.",
        validator=_not_negative,
    )
    ws_max_per_ip: int = setting(
        200,
        "WebSocket connections open at once from one client address, per instance (behind "
        "a proxy set trusted_proxies, or every client shares the proxy's count); one more "
        "is refused with HTTP 429 too_many_connections. 0: no cap (load tests).",
        validator=_not_negative,
    )
    ws_max_per_user: int = setting(
        20,
        "WebSocket connections open at once for one user, per instance; one more is refused "
        "with HTTP 429 too_many_connections. 0: no cap.",
        validator=_not_negative,
    )
    # garbage collector (docs/loadtest.md, benches/README.md "Load")
    gc_freeze: bool = setting(
        True,
        "After start-up, collect once, move every object alive then out of the collector's "
        "reach (gc.freeze) and set the collection thresholds to (50000, 3, 100), so that "
        "full collections are rare and do not walk start-up objects: with thousands of "
        "sockets a full collection stalls every game for 100+ ms.",
    )

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'goapp.db').resolve()}"

    @property
    def allowed_origins(self) -> frozenset[str]:
        """Origins a browser WebSocket may come from."""
        if self.site_url:
            return frozenset({self.site_url.rstrip("/")})
        return frozenset({f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"})

    def redacted(self) -> dict[str, Any]:
        """All values, with secrets masked: safe to log or print."""
        out: dict[str, Any] = {}
        for spec in setting_specs():
            value = getattr(self, spec.name)
            out[spec.name] = "********" if spec.secret and value else value
        return out


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One row of the settings table, as documentation and parsers see it."""

    name: str
    type: type
    default: Any
    help: str
    secret: bool
    validator: Callable[[Any], None] | None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


_TYPES: dict[str, type] = {"str": str, "int": int, "bool": bool, "float": float, "Path": Path}


def setting_specs() -> Iterator[SettingSpec]:
    """The settings table, in declaration order."""
    for f in dataclasses.fields(Settings):
        yield SettingSpec(
            name=f.name,
            type=_TYPES[str(f.type)],
            default=f.default,
            help=f.metadata["help"],
            secret=f.metadata["secret"],
            validator=f.metadata["validator"],
        )


def _convert(spec: SettingSpec, raw: Any, source: str) -> Any:
    try:
        if spec.type is bool:
            if isinstance(raw, bool):
                value: Any = raw
            elif str(raw).strip().lower() in ("1", "true", "yes", "on"):
                value = True
            elif str(raw).strip().lower() in ("0", "false", "no", "off", ""):
                value = False
            else:
                raise ValueError("must be true or false")
        elif spec.type is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError("must be an integer")
            value = int(raw)
        elif spec.type is Path:
            value = Path(str(raw)).expanduser()
        else:
            if not isinstance(raw, (str, int, float)):
                raise ValueError("must be a string")
            value = spec.type(raw)
        if spec.validator is not None:
            spec.validator(value)
    except ValueError as exc:
        shown = "(secret)" if spec.secret else repr(raw)
        raise SettingsError(f"{spec.name} from {source}: {shown} {exc}") from None
    return value


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the effective settings from defaults, TOML file, environment and overrides.

    ``overrides`` holds command-line values; ``None`` values are ignored (flag not given).
    """
    env = os.environ if env is None else env
    specs = {spec.name: spec for spec in setting_specs()}
    values: dict[str, Any] = {}

    config_file = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    if config_file:
        path = Path(config_file)
        try:
            with path.open("rb") as fh:
                table = tomllib.load(fh)
        except OSError as exc:
            raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
        for key, raw in table.items():
            spec = specs.get(key.replace("-", "_"))
            if spec is None:
                raise SettingsError(f"config file {path}: unknown setting {key!r}")
            values[spec.name] = _convert(spec, raw, f"config file {path}")

    for spec in specs.values():
        if spec.env in env:
            values[spec.name] = _convert(spec, env[spec.env], f"environment {spec.env}")
        file_var = spec.env + "_FILE"
        if spec.secret and file_var in env:
            try:
                raw = Path(env[file_var]).read_text().strip()
            except OSError as exc:
                raise SettingsError(
                    f"{file_var}: cannot read {env[file_var]}: {exc.strerror}"
                ) from None
            values[spec.name] = _convert(spec, raw, f"file named by {file_var}")

    known_env = {spec.env for spec in specs.values()} | {
        spec.env + "_FILE" for spec in specs.values() if spec.secret
    }
    known_env.add(ENV_PREFIX + "CONFIG")
    # GOAPP_TEST_* belong to the test suite, not to the server.
    unknown = sorted(
        k
        for k in env
        if k.startswith(ENV_PREFIX) and k not in known_env and not k.startswith("GOAPP_TEST_")
    )
    if unknown:
        raise SettingsError(f"unknown environment setting(s): {', '.join(unknown)}")

    for name, raw in (overrides or {}).items():
        if raw is not None:
            values[name] = _convert(specs[name], raw, "command line")

    return Settings(**values)


def settings_markdown() -> str:
    """The settings table as Markdown (docs/configuration.md embeds this verbatim)."""
    lines = [
        "| Setting | Environment | Type | Default | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in setting_specs():
        default = "(empty)" if spec.default == "" else f"`{spec.default}`"
        env = f"`{spec.env}`" + (f", `{spec.env}_FILE`" if spec.secret else "")
        lines.append(f"| `{spec.name}` | {env} | {spec.type.__name__} | {default} | {spec.help} |")
    return "\n".join(lines) + "\n"
