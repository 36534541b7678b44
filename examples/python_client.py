"""The README example: two real clasp-to clients through clasp-fast.

    pip install clasp-to && clasp-fast &      # then:
    python examples/python_client.py
"""
import asyncio
from clasp import Clasp                      # pip install clasp-to

URL = "ws://localhost:7330"

async def main():
    mixer, desk = Clasp(URL), Clasp(URL)
    await mixer.connect(); await desk.connect()
    desk.subscribe("/mixer/*/fader", lambda value, address: print(address, value))
    await asyncio.sleep(0.1)                  # let the SUBSCRIBE reach the router
    await mixer.set("/mixer/3/fader", 0.75)   # desk prints: /mixer/3/fader 0.75
    await asyncio.sleep(0.1)
    print(await mixer.get("/mixer/3/fader"))  # 0.75, read back from the router
    await mixer.close(); await desk.close()

if __name__ == "__main__":
    asyncio.run(main())
