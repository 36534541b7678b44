"""The README example: two clasp-fast clients through clasp-fast.

    pip install clasp-fast && clasp-fast &      # then:
    python examples/python_client.py

The same code runs with ``clasp-to`` (``from clasp import Clasp``) up to ``confirm=True``,
which is ours: it returns the revision the router gave the write.
"""
import asyncio
from clasp_fast import Clasp                  # pip install clasp-fast

URL = "ws://localhost:7330"

async def main():
    async with await Clasp.connect(URL) as mixer, await Clasp.connect(URL) as desk:
        await desk.subscribe("/mixer/*/fader", lambda value, address: print(address, value))
        await mixer.set("/mixer/3/fader", 0.75, confirm=True)  # the router applied it: revision 1
        print(await desk.get("/mixer/3/fader"))  # desk printed /mixer/3/fader 0.75, now 0.75

if __name__ == "__main__":
    asyncio.run(main())
