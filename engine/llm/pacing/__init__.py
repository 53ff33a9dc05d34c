"""Pacing: when a call may go out, by the endpoint's limits and the caller's say.

limiter.py       RateLimiter: token buckets for requests and tokens per minute, a concurrency
                 cap, FIFO waiters woken by one timer; the Permit a call holds
buckets.py       the token buckets providers limit by
aimd.py          the search for an unknown rate (adaptive mode)
headers.py       the rate-limit and retry hints servers send in headers
clock.py         the loop's clock, and a fake one for tests
gate.py          what a caller sets for its calls: a send gate, a permit admitted in advance
pool_limiter.py  the limiter of an endpoint pool: the first permit any member gives
fair_share.py    one endpoint's limit shared fairly by several studies (the service)
"""
