"""Probing: asking an endpoint what it is and what it can do, before the calls that count.

capabilities.py  what an endpoint can do (prompt log-probs by echo, chat log-probs, suffix),
                 probed once and kept; the check a scoring mode makes before its first call
preflight.py     before a study's first call: is this an LLM server, does it take the key,
                 does it serve the model (within two seconds)

Both reach the endpoint through its client's calls, typed by the protocols they declare
(`Probed`, `Checked`), so that probing knows nothing of the client that carries them.
"""
