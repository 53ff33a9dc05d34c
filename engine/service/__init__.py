"""The long-lived service: studies behind an HTTP JSON API (`ape-engine serve`).

`StudyManager` holds and runs the studies (shared endpoint limiters, resume on start, drain on
SIGTERM); `Operator` is what the operator decides (endpoints, folders, caps); `build_app` is the
aiohttp application over the manager; `serve` runs both until a signal.
"""

from engine.service.app import build_app
from engine.service.manager import StudyEntry, StudyManager
from engine.service.operator import Operator
from engine.service.process import ServeOptions, serve
from engine.service.requests import Patch, RequestError
from engine.service.state import StateDir, StudyRecord

__all__ = [
    "Operator",
    "Patch",
    "RequestError",
    "ServeOptions",
    "StateDir",
    "StudyEntry",
    "StudyManager",
    "StudyRecord",
    "build_app",
    "serve",
]
