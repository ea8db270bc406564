"""`xenmca demo`: the built-in demo scenario (8 pCPUs, about a minute), checked and reported."""

from __future__ import annotations

import argparse

from xenmca.testbed.run.command import add_run_arguments, run_scenario_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, with_scenario=False)


def run(args: argparse.Namespace) -> int:
    return run_scenario_command(args, "demo", "demo")
