"""Several endpoints serving one role, used as one (docs/endpoints.md).

endpoint_pool.py  EndpointPool: routing (the admitted permit's endpoint, else the least loaded
                  per weight), failover, and what the role can do
breaker.py        the circuit breaker of each endpoint: cool-downs, probes, its counts
"""
