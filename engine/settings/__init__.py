"""The user's settings of a study, nested by who reads them and declared once (docs/design.md,
"Settings"): `StudyConfig` and its groups, `SETTINGS` (one record per setting, from which the
flags, the service's request type and the resume rules are derived), and the TOML reader."""

from engine.settings.config import RENAMED, SETTINGS, StudyConfig, load_config_file
from engine.settings.fields import Setting
from engine.settings.groups import BackendSettings, Outputs, ScoringSettings, TaskSettings
from engine.settings.roles import Endpoint, Role

__all__ = [
    "RENAMED",
    "SETTINGS",
    "BackendSettings",
    "Endpoint",
    "Outputs",
    "Role",
    "ScoringSettings",
    "Setting",
    "StudyConfig",
    "TaskSettings",
    "load_config_file",
]
