"""What every command shares: the one-line usage error, argument types, and output checks."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Callable, List, Optional


class UsageError(Exception):
    """A bad combination of options found after parsing; `main` reports it in one line, like argparse."""


class Parser(argparse.ArgumentParser):
    """argparse, with every error as one line on stderr (`entropy-mcmc sample: error: ...`), exit status 2.

    Given `add_arguments(parser)` (a subcommand's), it calls it only when it first parses or formats help, so
    `entropy-mcmc --help` imports no subcommand's dependencies; `argv` holds the arguments it then parses (None
    when formatting help), for options that depend on them (`sample`: the chosen kernel's)."""

    def __init__(self, *args, add_arguments: Optional[Callable[["Parser"], None]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_arguments = add_arguments
        self.argv: Optional[List[str]] = None

    def _populate(self, argv: Optional[List[str]]) -> None:
        if self._add_arguments is not None:
            add, self._add_arguments = self._add_arguments, None
            self.argv = argv
            add(self)

    def parse_known_args(self, args=None, namespace=None):
        self._populate(list(sys.argv[1:] if args is None else args))
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._populate(None)
        return super().format_help()

    def format_usage(self) -> str:
        self._populate(None)
        return super().format_usage()

    def error(self, message: str):
        message = " ".join(line.strip() for line in message.splitlines() if line.strip())
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def checked(convert, ok, unparsable: str, out_of_range: Optional[str] = None):
    """An argparse type: `convert(text)`, then `ok(value)`; each failure says what was expected."""
    out_of_range = out_of_range or unparsable

    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{unparsable}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{out_of_range}, got {text!r}")
        return v

    return parse


positive_int = checked(int, lambda v: v >= 1, "expected a positive integer")
nonneg_int = checked(int, lambda v: v >= 0, "expected a non-negative integer")
probability = checked(float, lambda v: 0.0 < v < 1.0, "expected a number in (0, 1)")
unit_interval = checked(float, lambda v: 0.0 <= v < 1.0, "expected a number in [0, 1)")
positive_float = checked(float, lambda v: v > 0.0 and v != float("inf"), "expected a positive number",
                         "expected a positive finite number")
nonneg_float = checked(float, lambda v: 0.0 <= v < float("inf"), "expected a non-negative number",
                       "expected a non-negative finite number")
seed = checked(int, lambda v: 0 <= v < 2 ** 63, "expected an integer seed", "seed must lie in [0, 2^63)")
replicas = checked(int, lambda v: v >= 2, "expected an integer number of replicas",
                   "replica exchange needs at least 2 replicas")
max_temperature = checked(float, lambda v: 1.0 < v < float("inf"), "expected a temperature",
                          "expected a finite temperature above 1")


def target_name(text: str) -> str:
    """Checks a registry name without building the target (that happens once, in the handler)."""
    from ..targets import check_target_name

    try:
        return check_target_name(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def name_list(kind: str, allowed: Callable[[], tuple]):
    """An argparse type for a comma-separated list of names out of `allowed()`."""

    def parse(text: str) -> List[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        known = list(allowed())
        for n in names or [text]:
            if n not in known:
                raise argparse.ArgumentTypeError(f"unknown {kind} {n!r}; expected some of {', '.join(known)}")
        return names

    return parse


def real_kernel(text: str) -> str:
    """A registry kernel that moves real-valued states (an energy model's samples)."""
    from ..samplers.registry import get_kernel_spec

    try:
        space = get_kernel_spec(text).capabilities.state_space
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if space != "real":
        raise argparse.ArgumentTypeError(f"kernel {text!r} moves {space} states, expected a kernel on real states "
                                         "(entropy-mcmc list shows each kernel's state space)")
    return text


def device(text: str) -> str:
    import torch

    try:
        torch.empty(1, device=text)
        torch.Generator(device=text)  # the kernels draw their randomness on the device
    except Exception as err:  # RuntimeError, or AssertionError from a torch built without that backend
        raise argparse.ArgumentTypeError(f"device {text!r} is not usable: {err}") from None
    return text


def check_writable_file(path: Optional[str], option: str = "--out") -> None:
    """Fail before any work when `path` cannot be written (missing folder, no permission, a directory)."""
    if not path:
        return
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory, expected a file path")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{option} {path}: folder {folder} cannot be made ({err.strerror or err})") from None
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as err:
        raise UsageError(f"{option} {path}: cannot be written ({err.strerror or err})") from None
    if not existed:
        os.remove(path)


def check_writable_dir(path: str, option: str = "--out") -> None:
    """Fail before any work when files cannot be written into folder `path`; leaves no folder or file behind."""
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a file, expected a folder")
    top = path  # the outermost folder this check makes
    while not os.path.exists(os.path.dirname(top)) and os.path.dirname(top) != top:
        top = os.path.dirname(top)
    made = not os.path.exists(path)
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UsageError(f"{option} {path}: cannot be written ({err.strerror or err})") from None
    finally:
        if made and os.path.isdir(top):
            shutil.rmtree(top)


def command_line() -> str:
    return "entropy-mcmc " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("entropy-mcmc") \
        else "entropy_mcmc.cli.main"
