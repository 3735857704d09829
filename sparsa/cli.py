"""The ``sparsa`` command line. Verbs mirror what users do.

Each verb lives in its own module ``sparsa/cmd_<verb>.py`` exposing ``register(group)``;
user errors (see :mod:`sparsa.errors`) print one line and exit with code 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from sparsa import __version__, heap

COMMAND_MODULES = (
    "sparsa.cmd_workloads",
    "sparsa.cmd_masks",
    "sparsa.cmd_hw",
    "sparsa.cmd_verify",
    "sparsa.cmd_compile",
    "sparsa.cmd_sim",
    "sparsa.cmd_train",
    "sparsa.cmd_sweep",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sparsa")
def cli() -> None:
    """sparsa: co-design sparse DNNs and the sparse systolic arrays that run them."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


#: click >= 8.2 raises this for a group called without a command (its message is the help)
_NO_ARGS_IS_HELP: tuple[type[Exception], ...] = tuple(
    c for c in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if c is not None)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    try:
        rc = _run(argv)
    finally:
        heap.release()
    _exit_with(rc)


def entry() -> None:
    """The ``sparsa`` console script and ``python -m sparsa``: :func:`main` in a process
    that exits right after, so a heap settled by the verb (:mod:`sparsa.heap`) stays
    settled (releasing it would only make the interpreter's exit scan it once more)."""
    _exit_with(_run(None))


def _exit_with(rc: object) -> None:
    """Exit with a verb's non-zero integer return code (a verb that raised
    ``click.exceptions.Exit(rc)``: click returns the code)."""
    if isinstance(rc, int) and not isinstance(rc, bool) and rc:
        sys.exit(rc)


def _run(argv: list[str] | None) -> object:
    """The verb's return value; user errors become one line and ``SystemExit``."""
    from sparsa.errors import USER_ERRORS

    try:
        return cli.main(args=argv, prog_name="sparsa", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as e:
        if isinstance(e, _NO_ARGS_IS_HELP):     # bare 'sparsa' or 'sparsa workloads': help
            e.show()
            sys.exit(2)
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        msg = " ".join(e.format_message().split())
        click.echo(f"error: {msg}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except USER_ERRORS as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        click.echo(f"error: {msg}", err=True)
        sys.exit(2)
    except OSError as e:
        # a file the user named cannot be read or written (e.g. -o under a regular file)
        where = f"{e.filename}: " if e.filename else ""
        click.echo(f"error: {where}{e.strerror or e}", err=True)
        sys.exit(2)
    except MemoryError as e:
        # numpy names the size it could not allocate; the input asked for too much
        detail = f" ({' '.join(str(e).split())})" if str(e) else ""
        click.echo(f"error: out of memory{detail}; use a smaller --batch/--seq, or --no-data "
                   f"where the verb has it", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    entry()
