"""The calls of one endpoint: the path each takes, what is counted, and the scoring call.

path.py          CallPath: limiter permit -> transport -> classification, inside the one
                 retry layer (engine/llm/retry.py), with the endpoint's dialect around it
stats.py         the counters of calls and attempts, and their frozen read-out
scoring.py       log P(continuation | prompt) by echo: the check before, the tokens after
"""
