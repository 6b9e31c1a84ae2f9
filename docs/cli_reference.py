"""The `entropy-mcmc` parser with every subcommand's arguments added, for sphinx-argparse (docs/cli.md).

`entropy_mcmc.cli` adds a subcommand's arguments only when it parses or prints help; this fills them all in, and
escapes the help texts' asterisks (`[n, *event]`), which reStructuredText would read as emphasis.
"""
import argparse

from entropy_mcmc.cli import build_parser


def parser() -> argparse.ArgumentParser:
    root = build_parser()
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.format_help()  # adds its arguments
                for arg in sub._actions:
                    if arg.help:
                        arg.help = arg.help.replace("*", r"\*")
    return root
