"""What the operator of `ape-engine serve` decides, and a request cannot: the endpoints (their
URLs, keys, limits and timeouts), the folders studies may read from, and the concurrency cap.

A request picks an endpoint by name (``"endpoint": "gpu"``), or several that serve the same
model (``"endpoint": ["gpu-a", "gpu-b"]``: the study spreads its calls over them, each with its
own limits); `Operator.resolve` turns the request's settings into a study's, filling in what the
operator set for those endpoints -- the request can never give a URL, a key variable or a key
file. Task files, template files and local
models come by name from folders the operator named (`engine.task.paths.inside` keeps every
name inside its folder). The operator's settings come from ``serve``'s flags or its TOML file
(``[endpoints.<name>]`` tables), checked once by these types.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta

from engine.decoding import Invalid, convert
from engine.errors import ConfigError, EngineError
from engine.service.requests import EndpointName, RequestError
from engine.settings import StudyConfig
from engine.settings.roles import Url
from engine.study.judging import RUBRICS
from engine.study.settings import MAX_CONCURRENCY, MAX_COUNT, Throughput, TransportName
from engine.task import builtin_task_names
from engine.task.paths import inside

__all__ = [
    "DEFAULT_MAX_ACTIVE_STUDIES",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_STUDY_MB",
    "EndpointSpec",
    "Names",
    "Operator",
    "parse_endpoint_flag",
]

DEFAULT_MAX_CONCURRENCY = 1000
#: A study's worst-case memory and the studies running at once, by default: 8 x 256 MB leaves a
#: 4 GB machine room for the process itself and the page cache.
DEFAULT_MAX_STUDY_MB = 256.0
DEFAULT_MAX_ACTIVE_STUDIES = 8
_DEFAULT_CONCURRENCY = Throughput().concurrency
Name = Annotated[str, Meta(min_length=1)]
Rate = Annotated[float, Meta(ge=0.01, le=1e9)]
Timeout = Annotated[float, Meta(gt=0, le=86_400)]
CacheSize = Annotated[float, Meta(ge=1, le=1e9)]  # megabytes
ServiceConcurrency = Annotated[int, Meta(ge=1, le=MAX_CONCURRENCY)]
StudyMemory = Annotated[float, Meta(ge=16, le=1e7)]  # MB
ActiveStudies = Annotated[int, Meta(ge=1, le=10_000)]
#: The operator's endpoints a study runs on, by role ("target", "proposal"): a name, or the
#: names of a role that runs on several.
Names = dict[str, str | list[str]]
if TYPE_CHECKING:
    Transport = str
else:
    Transport = TransportName


class EndpointSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One endpoint the operator offers: where it is, its models (the first is the default; none
    listed: any model), its key (an environment variable or a file of the service's), its limits
    (shared fairly by the studies on it) and the timeout of one call."""

    base_url: Url
    models: list[Name] = []
    api_key_env: str | None = None
    api_key_file: str | None = None
    rpm: Rate | None = None
    tpm: Rate | None = None
    timeout_s: Timeout = 120.0
    transport: Transport = "aiohttp"

    def __post_init__(self) -> None:
        if self.api_key_env is not None and self.api_key_file is not None:
            raise ValueError("give api_key_env or api_key_file, not both")


class Operator(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The service's rules for studies (`serve`'s endpoint, folder and cap settings)."""

    endpoints: dict[EndpointName, EndpointSpec] = {}
    max_concurrency: ServiceConcurrency = DEFAULT_MAX_CONCURRENCY
    max_study_mb: StudyMemory = DEFAULT_MAX_STUDY_MB
    max_study_calls: Annotated[int, Meta(ge=1, le=MAX_COUNT)] | None = None
    max_active_studies: ActiveStudies = DEFAULT_MAX_ACTIVE_STUDIES
    cache_max_mb: CacheSize = 2048.0
    task_dir: str | None = None
    templates_dir: str | None = None
    model_dir: str | None = None

    @classmethod
    def decode(cls, data: dict[str, Any], where: str) -> Operator:
        try:
            operator: Operator = convert(data, cls)
        except Invalid as error:
            raise ConfigError(f"{where}: {error}") from None
        return operator

    # -- a study's settings from a request -------------------------------------------------

    def resolve(self, settings: dict[str, Any]) -> tuple[dict[str, Any], Names]:
        """The study's settings for a request's (`settings`, decoded: only fields a request
        may give), and the endpoint names it uses (``{"target": ..., "proposal": ...}``, a name
        or a list of names, for the service's record). A `RequestError` names the field it
        refuses."""
        settings = dict(settings)
        names = self._endpoint_names(settings)
        self.check_concurrency(settings.get("concurrency"), "config.concurrency")
        if "concurrency" not in settings:  # the default, within a lower cap
            settings["concurrency"] = min(_DEFAULT_CONCURRENCY, self.max_concurrency)
        settings.update(self.endpoint_settings(names))
        self._fill_models(settings, names)
        if settings.get("task"):
            settings["task"] = self._task(str(settings["task"]))
        if settings.get("templates") is not None:
            settings["templates"] = str(self._named(settings["templates"], "templates"))
        if settings.get("local_model") not in (None, "smollm2"):
            settings["local_model"] = str(self._named(settings["local_model"], "local_model"))
        rubric = settings.get("judge_rubric")
        if rubric is not None and rubric not in RUBRICS:
            raise RequestError(
                f"config.judge_rubric: {rubric!r} is not a ready rubric ({', '.join(RUBRICS)}); "
                "a service reads no rubric file a request names",
                "config.judge_rubric",
            )
        return settings, names

    def check_concurrency(self, concurrency: int | None, field: str) -> None:
        if concurrency is not None and concurrency > self.max_concurrency:
            raise RequestError(
                f"{field}: at most {self.max_concurrency} calls in flight per study in this "
                f"service (got {concurrency}; its operator sets the cap with --max-concurrency)",
                field,
            )

    def check_active(self, active: int) -> None:
        """Another study may start while `active` run."""
        if active >= self.max_active_studies:
            raise RequestError(
                f"this service runs at most {self.max_active_studies} studies at once (its "
                "operator sets --max-active-studies); wait for one to end, or cancel one",
                status=429,
            )

    def check_footprint(self, memory_mb: float, calls: int, sizes: str) -> None:
        """A study whose worst case (`memory_mb`, `calls`; `sizes` says what multiplies) is
        within the operator's limits; a `RequestError` naming the settings to lower."""
        lower = (
            "lower max_candidates, initial_candidates, the variant settings or scoring_size, "
            "or set budget_scoring_calls"
        )
        if memory_mb > self.max_study_mb:
            raise RequestError(
                f"config: this study may hold ~{memory_mb:,.0f} MB ({sizes}); this service "
                f"allows {self.max_study_mb:,.0f} MB per study (its operator sets "
                f"--max-study-mb); {lower}",
                "config",
            )
        if self.max_study_calls is not None and calls > self.max_study_calls:
            raise RequestError(
                f"config: this study may make {calls:,} calls ({sizes}); this service allows "
                f"{self.max_study_calls:,} per study (its operator sets --max-study-calls); "
                f"{lower}",
                "config",
            )

    def resumed(self, config: StudyConfig, names: Names) -> dict[str, Any]:
        """What changes in a study the service resumes: its endpoints as the operator has them
        now (an `EngineError` when one is gone), its concurrency within today's cap."""
        for role, listed in names.items():
            for name in _listed(listed):
                if name not in self.endpoints:
                    raise EngineError(
                        f"the {role} endpoint {name!r} is no longer offered by this service; "
                        "add it back (serve --endpoint) to resume the study"
                    )
        changes = self.endpoint_settings(names)
        changes["concurrency"] = min(config.throughput.concurrency, self.max_concurrency)
        return changes

    def _endpoint_names(self, settings: dict[str, Any]) -> Names:
        names: Names = {}
        for role, field in (("target", "endpoint"), ("proposal", "proposal_endpoint")):
            given = settings.pop(field, None)
            if given is None:
                continue
            listed = _listed(given)
            offered = ", ".join(self.endpoints) or "none: start it with --endpoint"
            for index, name in enumerate(listed):
                where = f"config.{field}" if isinstance(given, str) else f"config.{field}[{index}]"
                if name not in self.endpoints:
                    raise RequestError(
                        f"{where}: no endpoint {name!r} in this service; it offers {offered}",
                        where,
                    )
                if name in listed[:index]:
                    raise RequestError(f"{where}: {name!r} is named twice", where)
            names[role] = given if isinstance(given, str) or len(given) > 1 else given[0]
        if "proposal" in names and "target" not in names:
            raise RequestError(
                "config.proposal_endpoint: give endpoint too (the study's target)",
                "config.proposal_endpoint",
            )
        return names

    def endpoint_settings(self, names: Names) -> dict[str, Any]:
        """The study settings the operator's endpoints `names` stand for (a study resumed
        after the operator changed an endpoint takes its new URL, key and limits)."""
        settings: dict[str, Any] = {}
        if "target" not in names:
            return settings
        settings.update(self._role(_listed(names["target"]), ""))
        if "proposal" in names:
            settings.update(self._role(_listed(names["proposal"]), "proposal_"))
        return settings

    def _role(self, names: list[str], prefix: str) -> dict[str, Any]:
        """One role's settings: one endpoint's URL, key, limits and timeout, or the list of
        several (each with its own; the study's transport is the first's)."""
        first = self.endpoints[names[0]]
        settings: dict[str, Any] = {f"{prefix}timeout_s": first.timeout_s}
        if not prefix:
            settings.update(rpm=first.rpm, tpm=first.tpm, transport=first.transport)
        if len(names) == 1:
            return {
                **settings,
                f"{prefix}base_url": first.base_url,
                f"{prefix}api_key_env": first.api_key_env,
                f"{prefix}api_key_file": first.api_key_file,
                f"{prefix}endpoints": [],
            }
        return {
            **settings,
            f"{prefix}base_url": None,
            f"{prefix}api_key_env": None,
            f"{prefix}api_key_file": None,
            f"{prefix}endpoints": [self._entry(name) for name in names],
        }

    def _entry(self, name: str) -> dict[str, Any]:
        spec = self.endpoints[name]
        return {
            "name": name,
            "base_url": spec.base_url,
            "api_key_env": spec.api_key_env,
            "api_key_file": spec.api_key_file,
            "rpm": spec.rpm,
            "tpm": spec.tpm,
            "timeout_s": spec.timeout_s,
        }

    def _fill_models(self, settings: dict[str, Any], names: Names) -> None:
        """Each role's model: one every endpoint of the role offers (the first endpoint's first
        when none is asked for)."""
        if "target" not in names:
            return  # the in-process simulator or local model: any model name
        target = _listed(names["target"])
        settings["model"] = self._model(target, settings.get("model"), "model")
        proposal = _listed(names.get("proposal", names["target"]))
        asked = settings.get("proposal_model")
        offered = [self.endpoints[name].models for name in proposal]
        if asked is None and all(not one or settings["model"] in one for one in offered):
            return  # proposals use the target's model
        settings["proposal_model"] = self._model(proposal, asked, "proposal_model")

    def _model(self, endpoints: list[str], asked: str | None, field: str) -> str:
        """`asked`, or the first endpoint's first model, when every endpoint offers it."""
        first = self.endpoints[endpoints[0]].models
        if asked is None and not first:
            raise RequestError(
                f"config.{field}: endpoint {endpoints[0]!r} lists no models; name the model",
                f"config.{field}",
            )
        model = asked if asked is not None else first[0]
        for endpoint in endpoints:
            offered = self.endpoints[endpoint].models
            if offered and model not in offered:
                raise RequestError(
                    f"config.{field}: endpoint {endpoint!r} offers {', '.join(offered)}; not "
                    f"{model!r}",
                    f"config.{field}",
                )
        return model

    def _task(self, name: str) -> str:
        """A built-in task, or a task by name from the operator's task folder (as a path)."""
        if name in builtin_task_names():
            return name
        if self.task_dir is None:
            raise RequestError(
                f"config.task: {name!r} is not a built-in task, and this service has no task "
                "folder (serve --task-dir); give the task inline as task, or a built-in name",
                "config.task",
            )
        path = self._named(name, "task", must_exist=False)
        if not path.exists():
            raise RequestError(
                f"config.task: no task {name!r} in this service's task folder; give the task "
                "inline as task, or a built-in name",
                "config.task",
            )
        return str(path)

    def _named(self, name: Any, field: str, *, must_exist: bool = True) -> Path:
        folder = {
            "task": self.task_dir,
            "templates": self.templates_dir,
            "local_model": self.model_dir,
        }[field]
        flag = {"task": "--task-dir", "templates": "--templates-dir", "local_model": "--model-dir"}
        if folder is None:
            raise RequestError(
                f"config.{field}: this service takes no {field} files (its operator allows them "
                f"with serve {flag[field]}); leave it out",
                f"config.{field}",
            )
        try:
            path = inside(Path(folder), str(name))
        except EngineError as error:
            raise RequestError(f"config.{field}: {error}", f"config.{field}") from None
        if must_exist and not path.is_file():
            raise RequestError(
                f"config.{field}: no file {name!r} in this service's {field} folder",
                f"config.{field}",
            )
        return path


def _listed(names: str | list[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def parse_endpoint_flag(text: str) -> tuple[str, dict[str, Any]]:
    """``--endpoint NAME=URL[,key=value...]`` as (name, the fields of `EndpointSpec`);
    ``models`` lists several models separated by ``;``."""
    head, *options = text.split(",")
    name, equals, url = head.partition("=")
    if not equals or not name or not url:
        raise ConfigError(
            f"--endpoint {text!r}: give NAME=URL, then any of ,models=a;b ,api_key_env=VAR "
            ",api_key_file=PATH ,rpm=N ,tpm=N ,timeout_s=S ,transport=aiohttp|lean"
        )
    fields: dict[str, Any] = {"base_url": url}
    for option in options:
        key, equals, value = option.partition("=")
        if not equals:
            raise ConfigError(f"--endpoint {name}: {option!r} is not key=value")
        if key == "models":
            fields[key] = [model for model in value.split(";") if model]
        elif key in ("rpm", "tpm", "timeout_s"):
            try:
                fields[key] = float(value)
            except ValueError:
                raise ConfigError(f"--endpoint {name}: {key}: not a number ({value!r})") from None
        else:
            fields[key] = value
    return name, fields
