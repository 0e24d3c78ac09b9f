"""`reason serve`: one model, every strategy, behind an OpenAI-compatible HTTP API."""

from __future__ import annotations

import errno
import ipaddress
import signal
import socket
import sys
from typing import Annotated, Any

import typer

from reasoncli.cli.ask import FlashAttn, GpuLayers, ModelOpt, Threads, Verbose
from reasoncli.cli.flags import number_option
from reasoncli.errors import AddressError, ExitCode, UsageError
from reasoncli.option_checks import check_options

PANEL_LIMITS = "Limits"


def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, number_option("--port", help="TCP port.", low=0, high=65535)] = 8080,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="REASON_API_KEY",
            help="Require `Authorization: Bearer KEY` on /v1/ routes [$REASON_API_KEY].",
            show_default=False,
        ),
    ] = None,
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", help="Strategy for requests naming the bare model.")
    ] = "vote",
    branches: Annotated[
        int | None,
        number_option(
            "--branches",
            "-n",
            help="Default branches per request [8, at most --max-branches].",
            low=1,
        ),
    ] = None,
    max_branches: Annotated[
        int,
        number_option(
            "--max-branches",
            help="Branches decoding at once, over all requests.",
            low=1,
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = 16,
    max_requests: Annotated[
        int,
        number_option(
            "--max-requests",
            help="Runs holding the engine at once; more wait in the queue.",
            low=1,
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = 8,
    queue: Annotated[
        int,
        number_option(
            "--queue",
            help="Requests that may wait for branch slots; beyond it: HTTP 429.",
            low=0,
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = 16,
    queue_timeout: Annotated[
        float,
        number_option(
            "--queue-timeout",
            help="Seconds a request waits for branch slots before HTTP 503.",
            low=0.0,
            kind=float,
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = 60.0,
    ctx: Annotated[
        int,
        number_option(
            "--ctx",
            help="Context per branch (prompt + generated tokens).",
            low=64,
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = 2048,
    max_request_tokens: Annotated[
        int,
        number_option(
            "--max-request-tokens",
            help="Generated tokens one request may cost, over n x branches (planned and enforced).",
            low=1,
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = 32_768,
    max_n: Annotated[
        int,
        number_option(
            "--max-n",
            help="Independent results (`n`) one request may ask for.",
            low=1,
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = 16,
    max_body_bytes: Annotated[
        int,
        number_option(
            "--max-body-bytes",
            help="Largest request body; beyond it: HTTP 413.",
            low=1024,
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = 1 << 20,
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = True,
    verbose: Verbose = False,
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="Keep every served run in `reason logs`.")
    ] = True,
    prompt_cache: Annotated[
        bool,
        typer.Option(
            "--prompt-cache/--no-prompt-cache",
            help="Reuse the KV of prompt prefixes that earlier runs decoded.",
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = True,
) -> None:
    import uvicorn

    from reasoncli.cli.runner import ModelRequest
    from reasoncli.serve.app import ServerState, create_app
    from reasoncli.serve.engine_proc import EngineProcess
    from reasoncli.serve.request import Limits
    from reasoncli.serve.worker import EngineConfig
    from reasoncli.strategies.base import get_strategy

    get_strategy(strategy)  # unknown names fail before the model loads
    check_options({"threads": threads, "gpu_layers": gpu_layers})
    if branches is None:
        branches = min(8, max_branches)
    if branches > max_branches:
        raise UsageError(f"--branches ({branches}) is more than --max-branches ({max_branches})")
    limits = Limits(
        max_body_bytes=max_body_bytes,
        max_n=max_n,
        max_request_branches=max_branches,
        max_tokens_per_branch=ctx,
        max_request_tokens=max_request_tokens,
    )
    listener = bind(host, port)  # before the model loads: a taken port fails in a second
    if warning := exposure_warning(host, listener.getsockname()[1], api_key):
        print(warning, file=sys.stderr, flush=True)
    engine = EngineProcess(
        EngineConfig(
            model=ModelRequest(model, threads, gpu_layers, flash_attn, verbose, backend="local"),
            max_branches=max_branches,
            max_requests=max_requests,
            ctx=ctx,
            threads=threads,
            flash_attn=flash_attn,
            queue=queue,
            queue_timeout=queue_timeout,
            prompt_cache=prompt_cache,
        ),
        note=lambda line: print(line, file=sys.stderr, flush=True),
    )
    try:
        engine.start()  # the model loads in the engine process; its errors keep their exit code
    except BaseException:
        listener.close()
        raise
    engine.record = _recorder(engine.model_name, log)
    state = ServerState(
        engine=engine,
        model_name=engine.model_name,
        defaults={"strategy": strategy, "branches": branches},
        api_key=api_key or None,
        limits=limits,
    )
    config = uvicorn.Config(
        create_app(state),
        host=host,
        port=port,
        log_level="info" if verbose else "warning",
        access_log=verbose,
        timeout_graceful_shutdown=10,
        lifespan="off",
    )
    server = _Server(config, state)
    try:
        server.run([listener])
    finally:
        listener.close()
        engine.close()
    if server.failed:
        raise AddressError(f"could not serve on {host}:{port}")
    if server.signal == signal.SIGINT:
        raise typer.Exit(ExitCode.INTERRUPTED)


class _Server:
    """uvicorn's server, told to cancel running requests at Ctrl-C / SIGTERM.

    Cancelled runs return what they have at once (the strategies' Ctrl-C path), so the graceful
    shutdown that uvicorn then does finishes quickly instead of waiting for whole generations.
    """

    def __init__(self, config: Any, state: Any) -> None:
        import uvicorn

        outer = self

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                state.cancel_all()
                outer.signal = sig
                super().handle_exit(sig, frame)
                self._captured_signals.clear()  # exit with our code, not by re-raising it

            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                if self.started:
                    outer.announce(config)

        self._server = Server(config)
        self.state = state
        self.failed = False
        self.signal: int | None = None

    def announce(self, config: Any) -> None:
        host, port = config.host, config.port
        for server in getattr(self._server, "servers", []):
            for sock in server.sockets:
                port = sock.getsockname()[1]
        name = self.state.model_name
        key = " (API key required)" if self.state.api_key else ""
        print(f"reason serve: {name} on http://{host}:{port}/v1{key}", file=sys.stderr, flush=True)

    def run(self, sockets: list[socket.socket]) -> None:
        self._server.run(sockets)
        self.failed = not self._server.started


def _recorder(model: str, enabled: bool) -> Any:
    """Served runs go to the run history (`reason logs`) unless --no-log / REASON_NO_LOG."""
    from reasoncli.history import logging_disabled, record_served_run

    if not enabled or logging_disabled():
        return None
    return lambda *args: record_served_run(model, *args)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or AddressError (exit 9) saying why not.

    Bound before the model loads, so a port in use costs a second, not a model load, and uvicorn
    serves on this very socket: nothing can take the port in between.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise AddressError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        taken = exc.errno == errno.EADDRINUSE
        hint = " (another server is on it: choose another --port)" if taken else ""
        raise AddressError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    sock.set_inheritable(False)
    return sock


def exposure_warning(host: str, port: int, api_key: str | None) -> str | None:
    """The startup warning for an address other machines can reach, with no key required."""
    if api_key or _is_loopback(host):
        return None
    return (
        f"Warning: serving on {host}:{port} without --api-key: anyone who can reach it can run "
        "the model. Set --api-key or $REASON_API_KEY."
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
