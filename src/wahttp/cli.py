"""The `wahttp` command line: `serve` the API, run the `sim` sandbox, `auth` (import, export,
rotate-key)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wahttp.server.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wahttp", description=__doc__)
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="DEBUG, INFO, WARNING (default INFO)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("sim", help="run the simulated WhatsApp network (sandbox)")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    sim.add_argument("--port", type=int, default=0, help="WebSocket port (0: any free port)")
    sim.add_argument("--admin-port", type=int, default=0, help="admin API port (0: any free)")
    sim.add_argument(
        "--keys-file", type=Path, help="keep the simulator's root key here across restarts"
    )
    sim.add_argument(
        "--state-file",
        type=Path,
        help="keep accounts, devices, keys and queued stanzas here across restarts",
    )
    sim.add_argument(
        "--min-version",
        help="refuse older web client versions (e.g. 2.3000.1043857760) with a 405 failure",
    )
    sim.add_argument("--json", action="store_true", help="print the endpoints as one JSON line")
    serve = sub.add_parser("serve", help="run the REST API (settings from the environment)")
    serve.add_argument("--host", help="overrides HOST")
    serve.add_argument("--port", type=int, help="overrides PORT")
    auth = sub.add_parser("auth", help="move auth state between Baileys folders and the database")
    auth_sub = auth.add_subparsers(dest="auth_command", required=True)
    imp = auth_sub.add_parser("import", help="import a useMultiFileAuthState folder as a session")
    imp.add_argument("folder", type=Path)
    imp.add_argument("--id", help="session id (default: the folder's name)")
    exp = auth_sub.add_parser("export", help="write a session's auth as a Baileys folder")
    exp.add_argument("session_id")
    exp.add_argument("folder", type=Path)
    auth_sub.add_parser(
        "rotate-key",
        help="seal all auth state under the current encryption key (WAHTTP_ENCRYPTION_KEY[_FILE])",
    )
    return parser


async def _run_sim(args: argparse.Namespace) -> None:
    from wahttp.sim.runner import load_keys, start_sim

    keys = load_keys(args.keys_file) if args.keys_file or not args.state_file else None
    handle = await start_sim(
        args.host, args.port, args.admin_port, keys, state_file=args.state_file
    )
    if args.min_version:
        from wahttp.wa.client.version import parse_version

        handle.server.min_version = parse_version(args.min_version)
    info = {"ws_url": handle.ws_url, "root_key": handle.root_key_b64, "admin_url": handle.admin_url}
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"WhatsApp URL : {handle.ws_url}")
        print(f"root key     : {handle.root_key_b64}")
        print(f"admin API    : {handle.admin_url}  (docs: {handle.admin_url}/docs)")
        print(f"export WAHTTP_WA_URL={handle.ws_url} WAHTTP_WA_ROOT_KEY={handle.root_key_b64}")
        sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await handle.stop()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "sim":
        asyncio.run(_run_sim(args))
    elif args.command == "serve":
        _serve(args)
    elif args.command == "auth":
        from wahttp.server.auth_cli import run_auth_command

        sys.exit(asyncio.run(run_auth_command(args, load_settings())))


CONFIG_ERROR = 2  # the exit code of a bad setting, as for a bad command line


def load_settings() -> Settings:
    """The settings from the environment; on a bad one, one line per setting and exit 2.

    Never a traceback, and never a value: WAHTTP_API_KEY, webhook secrets and encryption keys
    are settings too.
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from wahttp.server.settings import Settings, describe_errors

    try:
        return Settings()
    except ValidationError as exc:
        lines = describe_errors(exc)
    except SettingsError as exc:  # a value the environment source could not even parse
        lines = [str(exc).splitlines()[0] if str(exc) else "a setting could not be read"]
    except ValueError as exc:  # a validator's own error that pydantic did not wrap
        lines = [str(exc)]
    for line in lines:
        print(f"wahttp: configuration error: {line}", file=sys.stderr)
    sys.exit(CONFIG_ERROR)


def _check_encryption_key(settings: Settings) -> None:
    """A malformed WAHTTP_ENCRYPTION_KEY[_FILE] fails here in one line, not in the lifespan."""
    from wahttp.server.at_rest import sealer_from_settings
    from wahttp.wa.auth.sealing import KeyConfigError

    quiet = logging.getLogger("wahttp.server.at_rest")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # startup_sealer says it again, once, when the app starts
    try:
        sealer_from_settings(settings)
    except KeyConfigError as exc:  # its messages name the setting, never the key
        print(f"wahttp: configuration error: {exc}", file=sys.stderr)
        sys.exit(CONFIG_ERROR)
    finally:
        quiet.setLevel(level)


def _serve(args: argparse.Namespace) -> None:
    from wahttp.server.app import create_app
    from wahttp.server.edge import uvicorn_config

    settings = load_settings()
    _check_encryption_key(settings)
    if args.host:
        settings.host = args.host
    if args.port is not None:
        settings.port = args.port
    logging.getLogger().setLevel(settings.log_level.upper())
    # httpx logs whole request URLs at INFO; webhook URLs may carry tokens.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Timeouts, connection cap and the redacted access log: server/edge.py.
    config = uvicorn_config(create_app(settings), settings)
    asyncio.run(_graceful_server_class()(config).serve())


def _graceful_server_class() -> type:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after shutting down; a finished graceful stop exits 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            try:
                yield
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    return GracefulServer


if __name__ == "__main__":
    main()
