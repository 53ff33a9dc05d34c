"""The transports: HTTP under the client, knowing nothing of the protocol it carries.

interface.py     the Transport the client asks of them, and the RawResponse they give back
aiohttp.py       the default: aiohttp's pooled keep-alive connections
lean.py          HTTP/1.1 on asyncio protocols with h11, for many thousands of calls in flight
"""
