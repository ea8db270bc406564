"""Where the pCPUs are: `--pcpu N=HOST:PORT` flags and inventory files for hundreds of them.

An inventory file is YAML or JSON: either a mapping `{pcpu: address}`, a list
of `{pcpu: N, address: HOST:PORT}`, or `{pcpus: <either>}`; or plain text
with one `N HOST:PORT` (or `N=HOST:PORT`) per line, `#` comments allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from xenmca.rpc.server import split_host_port


class InventoryError(ValueError):
    """An inventory that cannot be used; the message names where and what."""


def _pcpu_number(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise InventoryError(f"{where}: pCPU id {value!r} is not a non-negative integer")
    number = int(value)
    if number > 65535:
        raise InventoryError(f"{where}: pCPU id {number} is out of range (0-65535)")
    return number


def _address(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InventoryError(f"{where}: address {value!r} is not HOST:PORT")
    try:
        split_host_port(value)
    except ValueError as exc:
        raise InventoryError(f"{where}: {exc}") from None
    return value


def _add(result: dict[int, str], pcpu: int, address: str, where: str) -> None:
    if pcpu in result:
        raise InventoryError(f"{where}: pCPU {pcpu} is listed twice")
    result[pcpu] = address


def parse_pcpu_addr_flags(flags: Iterable[str]) -> dict[int, str]:
    result: dict[int, str] = {}
    for flag in flags:
        where = f"--pcpu {flag!r}"
        number, sep, address = flag.partition("=")
        if not sep:
            raise InventoryError(f"{where}: expected N=HOST:PORT")
        _add(result, _pcpu_number(number, where), _address(address, where), where)
    return result


def _from_text(path: Path, text: str) -> dict[int, str]:
    result: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        where = f"{path}:{number}"
        parts = content.replace("=", " ").split()
        if len(parts) != 2:
            raise InventoryError(f"{where}: expected 'PCPU HOST:PORT'")
        _add(result, _pcpu_number(parts[0], where), _address(parts[1], where), where)
    return result


def _from_data(path: Path, data: Any) -> dict[int, str]:
    if isinstance(data, dict) and set(data) == {"pcpus"}:
        data = data["pcpus"]
    result: dict[int, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}: pcpu {key}"
            _add(result, _pcpu_number(key, where), _address(value, where), where)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            where = f"{path}: item {index}"
            if not isinstance(item, dict) or set(item) != {"pcpu", "address"}:
                raise InventoryError(f"{where}: expected {{pcpu: N, address: HOST:PORT}}")
            _add(result, _pcpu_number(item["pcpu"], where), _address(item["address"], where), where)
    else:
        raise InventoryError(f"{path}: expected a mapping or a list of pCPUs")
    return result


def load_inventory(path: Path) -> dict[int, str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read inventory: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    result = _from_text(path, text) if data is None or isinstance(data, str) else None
    if result is None:
        result = _from_data(path, data)
    if not result:
        raise InventoryError(f"{path}: lists no pCPUs")
    return result


def merge_inventories(*parts: dict[int, str]) -> dict[int, str]:
    result: dict[int, str] = {}
    for part in parts:
        for pcpu, address in part.items():
            _add(result, pcpu, address, "inventory")
    return result
