"""JAAS login configuration files, the `-Djava.security.auth.login.config` that ZooKeeper reads.

The syntax is Java's `ConfigFile` (sun.security.provider), a StreamTokenizer grammar:

    Name {
        module.Class Flag option="value" other=value;   // comments: //, /* */
    };

Strings are quoted with " or ' (backslash escapes), names and unquoted values are words.
zkpy reads the DIGEST-MD5 users of the `Server` section (ZooKeeper's SaslServerCallbackHandler:
`user_<name>="<password>"`); a file that does not parse stops the start, as it stops ZooKeeper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class JaasError(ValueError):
    pass


@dataclass
class LoginModule:
    class_name: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


_FLAGS = frozenset({"required", "requisite", "sufficient", "optional"})
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | "(?P<dq>(?:[^"\\]|\\.)*)"
  | '(?P<sq>(?:[^'\\]|\\.)*)'
  | (?P<punct>[{};=])
  | (?P<word>[^\s{};="'/]+(?:/(?![/*])[^\s{};="'/]*)*)
""", re.VERBOSE | re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, value, line) with kind 'str', 'word' or the punctuation itself."""
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        line = text.count("\n", 0, pos) + 1
        if m is None:
            raise JaasError(f"line {line}: unexpected {text[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("space", "comment"):
            continue
        if kind in ("dq", "sq"):
            out.append(("str", _ESCAPE.sub(r"\1", m.group(kind)), line))
        elif kind == "punct":
            out.append((m.group(kind), m.group(kind), line))
        else:
            out.append(("word", m.group(kind), line))
    return out


def parse(text: str) -> dict[str, list[LoginModule]]:
    """The sections of a JAAS file by name; raises JaasError with the line of a syntax error."""
    toks = _tokens(text)
    sections: dict[str, list[LoginModule]] = {}
    i = 0

    def expect(kinds: tuple[str, ...], what: str) -> tuple[str, str, int]:
        nonlocal i
        if i >= len(toks):
            raise JaasError(f"end of file: expected {what}")
        tok = toks[i]
        if tok[0] not in kinds:
            raise JaasError(f"line {tok[2]}: expected {what}, got {tok[1]!r}")
        i += 1
        return tok

    while i < len(toks):
        name = expect(("word", "str"), "a section name")[1]
        expect(("{",), "'{'")
        modules: list[LoginModule] = []
        while i < len(toks) and toks[i][0] != "}":
            class_name = expect(("word",), "a login module class")[1]
            flag = expect(("word",), "a control flag (required, requisite, sufficient, optional)")
            if flag[1].lower() not in _FLAGS:
                raise JaasError(f"line {flag[2]}: {flag[1]!r} is not a control flag")
            module = LoginModule(class_name, flag[1].lower())
            while i < len(toks) and toks[i][0] != ";":
                key = expect(("word",), "an option name or ';'")[1]
                expect(("=",), f"'=' after {key}")
                module.options[key] = expect(("word", "str"), f"a value for {key}")[1]
            expect((";",), "';'")
            modules.append(module)
        expect(("}",), "'}'")
        expect((";",), "';' after '}'")
        if name in sections:  # ConfigFile merges a repeated section's modules
            sections[name].extend(modules)
        else:
            sections[name] = modules
    return sections


def read(path: str) -> dict[str, list[LoginModule]]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise JaasError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise JaasError(f"{path} is not a UTF-8 text file") from None
    try:
        return parse(text)
    except JaasError as e:
        raise JaasError(f"{path}: {e}") from None
