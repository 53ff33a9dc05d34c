"""`python -m engine.settings`: the table of every setting, as docs/guide.md shows it."""

from engine.settings.config import SETTINGS
from engine.settings.fields import settings_table

print(settings_table(SETTINGS), end="")
