"""The command-line reference as Markdown, rendered from the parser itself.

``python -m sweepjax.cli.reference > docs/cli.md`` regenerates ``docs/cli.md``;
``tests/test_docs.py`` fails when the file and the parser disagree.
"""

from __future__ import annotations

import argparse

HEADER = """\
# Command-line reference

Generated from the parser by `python -m sweepjax.cli.reference > docs/cli.md`; do not
edit by hand (`tests/test_docs.py` checks that it matches). `python -m sweepjax COMMAND
--help` prints the same text. What the commands are for: [workflow.md](workflow.md).
"""


def _cell(text: str) -> str:
    """One Markdown table cell: a single line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _metavar(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if isinstance(action.metavar, tuple):
        return " ".join(action.metavar)
    if action.metavar is not None:
        return action.metavar
    if action.choices is not None:
        return "|".join(map(str, action.choices))
    return action.dest.upper() if action.option_strings else action.dest


def _help(action: argparse.Action, prog: str) -> str:
    """The help text with ``%(default)s`` and friends expanded, as ``--help`` does."""
    if not action.help:
        return ""
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = prog
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    return action.help % params


def _default(action: argparse.Action) -> str:
    d = action.default
    if action.nargs == 0 or d is None or d is argparse.SUPPRESS:
        return ""
    return f"`{' '.join(map(str, d)) if isinstance(d, (list, tuple)) else d}`"


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """A table per argument group; the default column only where a group has defaults."""
    out: list[str] = []
    for group in parser._action_groups:
        rows = []
        for a in group._group_actions:
            if a.help is argparse.SUPPRESS or isinstance(
                a, (argparse._HelpAction, argparse._SubParsersAction)
            ):
                continue
            form = " ".join(s for s in (", ".join(a.option_strings), _metavar(a)) if s)
            rows.append((f"`{_cell(form)}`", _default(a), _cell(_help(a, parser.prog))))
        if not rows:
            continue
        cols = (0, 1, 2) if any(r[1] for r in rows) else (0, 2)
        names = ("option", "default", "meaning")
        out += [f"**{group.title}**", "", "| " + " | ".join(names[c] for c in cols) + " |"]
        out += ["|" + "---|" * len(cols)]
        out += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows] + [""]
    return out


def _text(text: str, prog: str) -> str:
    """A description as ``--help`` prints it, on one line."""
    return " ".join((text % {"prog": prog} if "%(prog)" in text else text).split())


def cli_markdown() -> str:
    """Every subcommand of ``python -m sweepjax``: its purpose, options and notes."""
    from sweepjax.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    short = {a.dest: a.help or "" for a in sub._choices_actions}
    lines = [HEADER, "| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#{name}) | {_cell(short.get(name, ''))} |" for name in sub.choices]
    lines += ["", "`python -m sweepjax` itself:", ""] + _options(parser)
    for name, p in sub.choices.items():
        pos = [_metavar(a) for a in p._actions if not a.option_strings]
        usage = " ".join(["python -m sweepjax", name, "[options]", *pos])
        lines += [f"## {name}", "", f"`{usage}`", ""]
        if p.description:
            lines += [_text(p.description, p.prog), ""]
        lines += _options(p)
        if p.epilog:
            lines += ["```text", p.epilog.strip("\n"), "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    print(cli_markdown(), end="")


if __name__ == "__main__":
    main()
