"""The Lua scripts in lua/, registered once per client (EVALSHA, loaded on first use).

Each script gets every key it touches through KEYS, as Redis documents, and says at its
top what KEYS and ARGV it takes and the named outcomes it returns. A first line
`-- include: NAME` prepends lua/NAME.lua (the job scripts share job_lib.lua).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).with_name("lua")
_INCLUDE = "-- include: "


@cache
def source(name: str) -> str:
    """The text of lua/NAME.lua with its include resolved."""
    text = (LUA_DIR / f"{name}.lua").read_text()
    first, _, rest = text.partition("\n")
    if first.startswith(_INCLUDE):
        return source(first[len(_INCLUDE) :].strip()) + rest
    return text


def register(r: Any, name: str) -> Any:
    """A redis-py Script for lua/NAME.lua on client `r` (sync or asyncio): calling it
    sends EVALSHA, and loads the script (SCRIPT LOAD) only when Redis lacks it."""
    return r.register_script(source(name))
