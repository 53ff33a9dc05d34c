"""The protocol: what an endpoint is sent and what its answers mean, with no I/O.

request.py       a call's body, encoded once, with its token estimate and its parser
builder.py       the requests of one endpoint in its protocol (OpenAI-compatible or Messages API)
anthropic.py     Anthropic's Messages API: its bodies, headers and answers
dialect.py       the parameters an endpoint takes, learned once from its own refusals
answers.py       reading an answer: texts, finish reasons, log-probs, usage per choice
classification.py  which kind of error an error answer is
results.py       what a call returns: small frozen values
"""
