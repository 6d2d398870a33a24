"""`zkpy shell`: ZooKeeper's zkCli without a JVM, over kazoo, against zkpy or Apache ZooKeeper.

Same commands, same output on the same streams as zkCli 3.8 (results on stdout; `Created /x`
and errors on stderr), so scripts written for `zkCli.sh -server h:p < script` work unchanged:

    zkpy shell -server 127.0.0.1:2181               # interactive: history, Tab completion
    zkpy shell -server 127.0.0.1:2181 ls -R /       # one command, its exit code
    zkpy shell -server 127.0.0.1:2181 -c "get /a"
    zkpy shell -server 127.0.0.1:2181 < script      # commands from stdin, no prompt
"""

from __future__ import annotations

import sys

from .commands import Shell

__all__ = ["Shell", "run"]


def run(server: str, timeout_ms: int = 30000, command: list[str] | None = None, read_only: bool = False) -> int:
    """Connect, then run `command` (zkCli's trailing arguments) or the lines of stdin;
    the exit code is the last command's (0, 1 for a failed command, 127 for an unknown one)."""
    from .texts import split_command

    shell = Shell(server, timeout_ms, read_only=read_only)
    shell.out(f"Connecting to {server}")
    if not command:
        # Before the session starts: its connected event, printed from the session's thread,
        # must not come first (it did on a loaded machine).
        shell.out("Welcome to ZooKeeper!")
    shell.connect(server, wait=False)
    try:
        if command:
            shell.wait_connected()
            shell.run(command if len(command) > 1 else split_command(command[0]))
        else:
            shell.wait_connected()
            if sys.stdin.isatty():
                _interactive(shell)
            else:
                for line in sys.stdin:
                    shell.execute_line(line.rstrip("\r\n"))
    except SystemExit as e:  # `quit`
        return int(e.code or 0)
    except KeyboardInterrupt:
        pass
    finally:
        shell.close()
    return shell.exit_code


def _interactive(shell: Shell) -> None:
    try:
        import prompt_toolkit  # noqa: F401

        from .terminal import interactive
    except ImportError:
        from .terminal import INSTALL_HINT

        print(INSTALL_HINT, file=sys.stderr)
        while True:  # zkCli without JLine: plain lines, no editing
            try:
                line = input(shell.prompt())
            except EOFError:
                print()
                return
            shell.execute_line(line)
    else:
        interactive(shell)
