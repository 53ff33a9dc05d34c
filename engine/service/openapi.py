"""The OpenAPI 3.1 description of the service's routes (served at ``GET /openapi.json``).

The study settings' schema is built from `StudyConfig`'s fields (the same table the request
checks use), the snapshot's from `StudySnapshot`'s dataclasses, so the document follows the code.
Reference: OpenAPI Specification v3.1.0.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from engine import __version__
from engine.service.validation import CONFIG_TYPES, RATE_LIMIT_NAMES, SERVICE_OWNED
from engine.study import snapshot as snapshot_module
from engine.study.budgets import BUDGET_NAMES

__all__ = ["openapi_document"]

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _kinds(kinds: tuple[str, ...]) -> dict[str, Any]:
    if not kinds:
        return {}
    return {"type": list(kinds) if len(kinds) > 1 else kinds[0]}


def _python_schema(annotation: Any) -> dict[str, Any]:
    """A JSON schema for a snapshot field's type (dataclasses become references)."""
    origin = typing.get_origin(annotation)
    if annotation is type(None):
        return {"type": "null"}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_python_schema(arg) for arg in typing.get_args(annotation)]}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(annotation))}
    if origin is tuple:
        args = typing.get_args(annotation)
        return {"type": "array", "items": _python_schema(args[0]) if args else {}}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _ref(annotation.__name__)
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return {"type": simple[annotation]} if annotation in simple else {}


def _dataclass_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, vars(snapshot_module))
    properties = {item.name: _python_schema(hints[item.name]) for item in dataclasses.fields(cls)}
    return {"type": "object", "properties": properties, "required": list(properties)}


def _snapshot_schemas() -> dict[str, Any]:
    classes = ("StudySnapshot", "ArmRow", "ThroughputRow", "LimiterRow", "BudgetRow", "ProposalRow")
    return {name: _dataclass_schema(getattr(snapshot_module, name)) for name in classes}


def _error() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"], "description": "the field refused"},
                },
                "required": ["message", "field"],
            }
        },
        "required": ["error"],
    }


def _rates(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {
            name: {"type": ["number", "null"], "exclusiveMinimum": 0} for name in RATE_LIMIT_NAMES
        },
        "additionalProperties": False,
    }


def _request_schemas() -> dict[str, Any]:
    settings = {
        name: _kinds(kinds) for name, kinds in CONFIG_TYPES.items() if name not in SERVICE_OWNED
    }
    example = {
        "type": "object",
        "properties": {
            "input": {"type": "string"},
            "output": {"type": ["string", "array"], "items": {"type": "string"}},
            "choices": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["input", "output"],
        "additionalProperties": False,
    }
    return {
        "StudySettings": {
            "type": "object",
            "description": "StudyConfig settings, as in the TOML file (journal: chosen by the "
            "service)",
            "properties": settings,
            "additionalProperties": False,
        },
        "InlineTask": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                "examples": {"type": "array", "items": example, "minItems": 1},
                "human_instruction": {"type": "string"},
                "description": {"type": "string"},
                "metric": {"type": "string"},
            },
            "required": ["name", "examples"],
            "additionalProperties": False,
        },
        "CreateStudy": {
            "type": "object",
            "properties": {
                "config": _ref("StudySettings"),
                "config_file": {
                    "type": "string",
                    "description": "a TOML settings file; config overrides it",
                },
                "task": _ref("InlineTask"),
            },
            "additionalProperties": False,
        },
        "Created": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string"},
                "journal": {"type": "string"},
            },
            "required": ["id", "status"],
        },
        "StudySummary": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "task": {"type": "string"},
                "policy": {"type": "string"},
                "status": {"type": "string"},
                "elapsed_s": {"type": "number"},
                "done": {"type": "boolean"},
                "journal": {"type": "string"},
                "message": {"type": "string"},
            },
            "required": ["id", "task", "policy", "status", "elapsed_s", "done"],
        },
        "Patch": {
            "type": "object",
            "description": "Checked whole before anything changes; only what it names changes.",
            "properties": {
                "concurrency": {"type": "integer", "minimum": 1},
                "rate_limits": _rates(
                    "this study's own cap on its endpoints (null: no cap "
                    "of its own; it gets its fair share of the endpoint's limit)"
                ),
                "endpoint_rate_limits": _rates(
                    "the limit of the study's endpoints, shared by every study on them"
                ),
                "budgets": {
                    "type": "object",
                    "properties": {
                        name: {"type": ["number", "null"], "minimum": 0} for name in BUDGET_NAMES
                    },
                    "additionalProperties": False,
                },
                "new_candidate_share": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                "paused": {"type": "boolean"},
                "drop": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            },
            "additionalProperties": False,
        },
        "Cancelled": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "status": {"type": "string"}},
            "required": ["id", "status"],
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"const": "ok"},
                "studies": {"type": "integer"},
                "version": {"type": "string"},
                "running": {"type": "integer"},
                "draining": {"type": "boolean"},
            },
            "required": ["status", "studies", "version"],
        },
        "Error": _error(),
    }


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": _json_content(_ref(schema))}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "a field is refused (the message and `field` name it); nothing changed",
        401: "no or wrong bearer token",
        404: "no such study",
        409: "the study cannot take the change now (starting, or done)",
        413: "the body is larger than the limit",
        503: "the service is shutting down",
    }
    return {str(status): _answer(meaning[status], "Error") for status in statuses}


def openapi_document(auth: bool) -> dict[str, Any]:
    """The document; with `auth`, every route but /health declares the bearer scheme."""
    study_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    secured: dict[str, Any] = {"security": [{"bearer": []}]} if auth else {}
    events = {
        "description": "text/event-stream: `event: <kind>` + `data: <json>` per study event "
        "(candidate_added, pull_done, arm_eliminated, leader_changed, budget_changed, error, "
        "finished), `event: snapshot` (StudySnapshot) at most every 0.25 s, `: ping` "
        "keep-alives, and `event: end` ({id, status}) last",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "summary": "liveness (no token needed)",
                "operationId": "health",
                "security": [],
                "responses": {"200": _answer("the service runs", "Health")},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "this document",
                "operationId": "openapi",
                **secured,
                "responses": {"200": {"description": "OpenAPI 3.1 document"}, **_errors(401)},
            }
        },
        "/v1/studies": {
            "post": {
                "summary": "create and start a study",
                "operationId": "createStudy",
                **secured,
                "requestBody": {"required": True, "content": _json_content(_ref("CreateStudy"))},
                "responses": {
                    "201": _answer("started", "Created"),
                    **_errors(400, 401, 413, 503),
                },
            },
            "get": {
                "summary": "list the studies",
                "operationId": "listStudies",
                **secured,
                "responses": {
                    "200": {
                        "description": "the studies, oldest first",
                        "content": _json_content(
                            {
                                "type": "object",
                                "properties": {
                                    "studies": {"type": "array", "items": _ref("StudySummary")}
                                },
                            }
                        ),
                    },
                    **_errors(401),
                },
            },
        },
        "/v1/studies/{id}": {
            "parameters": [study_id],
            "get": {
                "summary": "the study's snapshot",
                "operationId": "inspectStudy",
                **secured,
                "responses": {"200": _answer("snapshot", "StudySnapshot"), **_errors(401, 404)},
            },
            "patch": {
                "summary": "change budgets, concurrency, limits, share; pause, resume, drop",
                "operationId": "patchStudy",
                **secured,
                "requestBody": {"required": True, "content": _json_content(_ref("Patch"))},
                "responses": {
                    "200": _answer("the snapshot after the change", "StudySnapshot"),
                    **_errors(400, 401, 404, 409, 413, 503),
                },
            },
            "delete": {
                "summary": "cancel the study (its journal gets its result record)",
                "operationId": "cancelStudy",
                **secured,
                "responses": {"200": _answer("cancelled", "Cancelled"), **_errors(401, 404)},
            },
        },
        "/v1/studies/{id}/events": {
            "parameters": [
                study_id,
                {
                    "name": "interval",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "number", "minimum": 0.25, "default": 0.25},
                    "description": "seconds between snapshot events",
                },
            ],
            "get": {
                "summary": "server-sent events of the study",
                "operationId": "studyEvents",
                **secured,
                "responses": {"200": events, **_errors(400, 401, 404)},
            },
        },
    }
    components: dict[str, Any] = {"schemas": {**_request_schemas(), **_snapshot_schemas()}}
    if auth:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ape-engine service",
            "version": __version__,
            "description": "Automatic Prompt Engineer studies in a long-lived process.",
        },
        "paths": paths,
        "components": components,
    }
