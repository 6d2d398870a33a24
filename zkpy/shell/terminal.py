"""The interactive shell: prompt_toolkit for line editing, history (Up/Down, Ctrl-R) and Tab
completion of command names and znode paths (what zkCli does with JLine)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .commands import Shell

INSTALL_HINT = ("zkpy shell: the interactive shell needs prompt_toolkit: pip install 'zkpy[shell]' "
                "(or pip install prompt_toolkit); piped input and -c work without it")


def interactive(shell: Shell) -> None:
    """Read lines until EOF (Ctrl-D) or `quit`; Ctrl-C clears the line."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.patch_stdout import patch_stdout

    session: PromptSession = PromptSession(history=InMemoryHistory(), completer=_completer(shell),
                                           complete_while_typing=False)
    with patch_stdout(raw=True):  # watch events printed while the prompt waits land above it
        while True:
            try:
                line = session.prompt(shell.prompt)
            except KeyboardInterrupt:
                continue
            except EOFError:
                return
            shell.execute_line(line)


def _completer(shell: Shell):
    from prompt_toolkit.completion import Completer, Completion

    from .commands import COMMANDS

    class ZNodeCompleter(Completer):
        """JLineZNodeCompleter: the first word is a command; a word starting with / a path,
        completed from its parent's children (read from the server as you press Tab)."""

        def get_completions(self, document, complete_event) -> Iterable[Completion]:
            word = document.get_word_before_cursor(WORD=True)
            before = document.text_before_cursor
            if word.startswith("/"):
                for path in _paths(shell, word):
                    yield Completion(path, start_position=-len(word))
            elif not before[: len(before) - len(word)].strip():
                for cmd in COMMANDS:
                    if cmd.startswith(word):
                        yield Completion(cmd, start_position=-len(word))

    return ZNodeCompleter()


def _paths(shell: Shell, word: str) -> list[str]:
    from kazoo.exceptions import KazooException

    parent, _, prefix = word.rpartition("/")
    session = shell.session
    if session is None or not session.alive or not session.client.connected:
        return []
    try:
        children = session.client.get_children(parent or "/")
    except KazooException:  # a path that does not exist (or cannot be read) completes to nothing
        return []
    return [f"{parent}/{c}" for c in sorted(children) if c.startswith(prefix)]
