"""Command-line spellings shared by every `xenmca` command: pCPU addresses and deprecated flags.

One flag per kind of target, the same way everywhere: ``--xen HOST:PORT`` names the
coordinator and ``--pcpu HOST:PORT`` or ``--pcpu N=HOST:PORT`` a pCPU (N, its number,
where the command needs it). Old spellings (``--pcpu-addr``, ``--target``, ``--json
FILE``) still work for existing scripts; each use prints one warning line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xenmca.rpc.server import split_host_port

MAX_PCPU = 65535


@dataclass(frozen=True)
class PcpuAddress:
    """A pCPU as ``--pcpu`` names it: its server's address, and its number when given."""

    address: str
    pcpu: int | None = None

    def __str__(self) -> str:
        return self.address if self.pcpu is None else f"{self.pcpu}={self.address}"


def parse_pcpu_number(text: str) -> int:
    """A pCPU number 0..65535; ValueError naming the text otherwise."""
    if not text.isdigit() or int(text) > MAX_PCPU:
        raise ValueError(f"pCPU number {text!r} is not 0..{MAX_PCPU}")
    return int(text)


def parse_pcpu_address(text: str) -> PcpuAddress:
    """``HOST:PORT`` or ``N=HOST:PORT``; ValueError with one line otherwise."""
    number, sep, address = text.partition("=")
    if not sep:
        number, address = "", text
    split_host_port(address)
    return PcpuAddress(address, parse_pcpu_number(number) if sep else None)


def pcpu_address_arg(text: str) -> PcpuAddress:
    """argparse type of ``--pcpu HOST:PORT|N=HOST:PORT``."""
    try:
        return parse_pcpu_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (expected HOST:PORT or N=HOST:PORT)") from None


def numbered_pcpu_arg(text: str) -> PcpuAddress:
    """argparse type of ``--pcpu N=HOST:PORT`` where the number is required."""
    found = pcpu_address_arg(text)
    if found.pcpu is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N=HOST:PORT (the pCPU's number)")
    return found


def warn_deprecated(prog: str, old: str, new: str) -> None:
    """The one line an old spelling prints on stderr."""
    print(f"{prog}: warning: {old} is deprecated and will be removed; use {new}", file=sys.stderr)


class DeprecatedFlag(argparse.Action):
    """An old spelling of a flag: stores (or appends) into the new flag's dest, and warns.

    Hidden from ``--help``; the README lists every old spelling with its new one.
    """

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        *,
        use: str,
        append: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)
        self.use = use
        self.append = append

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        warn_deprecated(parser.prog, option_string or self.option_strings[0], self.use)
        if self.append:
            items = list(getattr(namespace, self.dest, None) or [])
            items.append(values)
            values = items
        setattr(namespace, self.dest, values)


def add_deprecated_flag(
    parser: argparse.ArgumentParser | argparse._ActionsContainer,
    old: str,
    *,
    dest: str,
    use: str,
    append: bool = False,
    **kwargs: Any,
) -> None:
    """``old`` as a hidden alias of the flag stored in ``dest``; ``use`` says what replaces it."""
    parser.add_argument(old, dest=dest, action=DeprecatedFlag, use=use, append=append, **kwargs)
