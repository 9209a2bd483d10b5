"""Test helper (run as a subprocess by tests/test_store_durability.py): keep appending
events to several games at once and print ``game_id seq`` for each acknowledged event,
flushed, until killed.

Usage: python tests/store_writer.py URL GAME_ID [GAME_ID ...]
"""

from __future__ import annotations

import asyncio
import os
import sys

from goapp.store import open_store


async def main() -> None:
    url, game_ids = sys.argv[1], [int(x) for x in sys.argv[2:]]
    store = await open_store(url)

    async def play(gid: int) -> None:
        seq = (await store.get_game(gid)).last_seq
        while True:
            seq += 1
            await store.append_event(gid, seq, "move", {"game": gid, "seq": seq})
            os.write(1, f"{gid} {seq}\n".encode())  # the ack: unbuffered, one write per line

    os.write(1, b"ready\n")
    await asyncio.gather(*(play(g) for g in game_ids))


if __name__ == "__main__":
    asyncio.run(main())
