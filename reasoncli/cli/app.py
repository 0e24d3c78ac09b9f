"""The Typer application and the one error boundary that maps failures to exit codes."""

from __future__ import annotations

import errno
import os
import sys

import typer

from reasoncli import crash_watch
from reasoncli.cli import help as cli_help
from reasoncli.cli.ask import ask, think
from reasoncli.cli.bench import bench_app, rollouts
from reasoncli.cli.doctor import doctor
from reasoncli.cli.help import PanelCommand
from reasoncli.cli.io import Environment, StdoutClosed, current_environment
from reasoncli.cli.logs import logs_app
from reasoncli.cli.models import models_app
from reasoncli.cli.serve import serve
from reasoncli.cli.strategies import strategies
from reasoncli.cli.train import train_app
from reasoncli.cli.train_verifier import verifier as _train_verifier  # noqa: F401 (registers it)
from reasoncli.cli.tune import EXAMPLES as TUNE_EXAMPLES
from reasoncli.cli.tune import tune
from reasoncli.engine import cpu_buffers
from reasoncli.errors import ExitCode, ReasonError

app = typer.Typer(
    name="reason",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Spend test-time compute on a local GGUF model: parallel branches, votes, budgets.",
)


def _print_version(value: bool) -> None:
    """`reason --version`: ours and llama-cpp-python's, read from package metadata (no import
    of llama.cpp, so it is as fast as `--help`)."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    from reasoncli import __version__

    try:
        llama = version("llama_cpp_python")
    except PackageNotFoundError:
        llama = "not installed"
    print(
        f"reason {__version__} (llama-cpp-python {llama}, Python {sys.version.split()[0]})",
        file=current_environment().stdout,
    )
    raise typer.Exit()


@app.callback()
def _global_options(
    cpu_extra_buffers: str = typer.Option(
        None,
        "--cpu-extra-buffers",
        metavar="auto|on|repack|off",
        help=(
            "Which of llama.cpp's extra CPU weight buffers to use: auto (the default: AMX only "
            "where a probe shows it runs), on (AMX and repack), repack (no AMX), off (none). "
            f"Also {cpu_buffers.ENV_VAR}."
        ),
    ),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        metavar="",
        help="Print the version of reason and llama-cpp-python, then exit.",
    ),
) -> None:
    if cpu_extra_buffers is not None:
        # Through the environment, so child processes (the probe, workers) decide the same way.
        os.environ[cpu_buffers.ENV_VAR] = cpu_buffers.requested_mode(cpu_extra_buffers)


app.command(
    cls=PanelCommand,
    help="Answer with parallel thinking: many branches, one vote.",
    epilog=cli_help.ASK_EXAMPLES,
)(ask)
app.command(
    cls=PanelCommand,
    help="Answer with serial thinking: one chain under a token budget.",
    epilog=cli_help.THINK_EXAMPLES,
)(think)
app.command(
    help="List the strategies: name, kind, summary and options.",
    epilog=cli_help.STRATEGIES_EXAMPLES,
)(strategies)
app.add_typer(models_app, name="models", epilog=cli_help.MODELS_EXAMPLES)
app.command(
    help="Backend, threads, RAM/VRAM, and which models fit.",
    epilog=cli_help.DOCTOR_EXAMPLES,
)(doctor)
app.add_typer(bench_app, name="bench", epilog=cli_help.BENCH_EXAMPLES)
app.command(
    help="Write GRPO groups: completions, rewards, advantages.",
    epilog=cli_help.ROLLOUTS_EXAMPLES,
)(rollouts)
app.add_typer(train_app, name="train", epilog=cli_help.TRAIN_EXAMPLES)
app.add_typer(logs_app, name="logs", epilog=cli_help.LOGS_EXAMPLES)
app.command(help="Learn which strategy pays per difficulty and budget.", epilog=TUNE_EXAMPLES)(tune)
app.command(
    help="Serve every strategy behind an OpenAI-compatible HTTP API.",
    epilog=cli_help.SERVE_EXAMPLES,
)(serve)


def main(argv: list[str] | None = None, env: Environment | None = None) -> None:
    """Run the CLI; every error leaves as one `Error: ...` line and a meaningful exit code.

    `env` is the process as the commands see it (`cli.io.Environment`): the real one by
    default; tests pass their own streams to run the CLI in-process. Either way this ends in
    `SystemExit(code)`, the code the `reason` process exits with.
    """
    env = env or Environment()
    with env.bound():
        _main(argv, env)


def _main(argv: list[str] | None, env: Environment) -> None:
    if env.owns_process:
        crash_watch.arm()
    try:
        cpu_buffers.requested_mode()  # a bad REASON_CPU_EXTRA_BUFFERS is a usage error up front
        rc = app(args=argv, standalone_mode=False, prog_name="reason")
        if isinstance(rc, int) and rc:
            _exit(rc)
    except typer.Exit as exc:
        _exit(exc.exit_code)
    except typer.Abort:
        _exit(ExitCode.INTERRUPTED)
    except typer.TyperException as exc:  # usage errors: bad flags, bad values (exit 2)
        exc.show()  # type: ignore[attr-defined]  # to sys.stderr: env.bound() set it
        _exit(getattr(exc, "exit_code", ExitCode.USAGE))
    except ReasonError as exc:
        _error(str(exc))
        _exit(exc.exit_code)
    except KeyboardInterrupt as exc:  # Ctrl-C 130; SIGTERM, SIGHUP: 128 + the signal
        _exit(getattr(exc, "exit_code", ExitCode.INTERRUPTED))
    except (BrokenPipeError, StdoutClosed):
        _quiet_pipe_exit()
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            _quiet_pipe_exit()
        _error(str(exc))
        _exit(ExitCode.ERROR)
    _exit(ExitCode.OK)


def _error(message: str) -> None:
    try:
        print(f"Error: {message}", file=current_environment().stderr, flush=True)
    except (BrokenPipeError, OSError):
        pass


def _exit(code: int) -> None:
    try:
        current_environment().stdout.flush()
    except (BrokenPipeError, OSError):
        _quiet_pipe_exit()
    raise SystemExit(int(code))


def _quiet_pipe_exit() -> None:
    """A closed stdout pipe (`reason ask ... | head -c1`) is not an error worth a traceback."""
    env = current_environment()
    if env.owns_process:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, env.stdout.fileno())
    raise SystemExit(ExitCode.OK)
