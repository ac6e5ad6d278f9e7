"""Built-in CLI commands; importing this package registers them in :data:`COMMANDS`.

:mod:`.base` holds what a command is made of, :mod:`.progress` the progress bar every work command
passes to the library as ``report``; :mod:`chaosmining.cli` builds the parser from the registry.
"""

from . import (
    app,  # noqa: F401
    audio,  # noqa: F401
    evaluate,  # noqa: F401
    reproduce,  # noqa: F401
    results,  # noqa: F401
    rfe,  # noqa: F401
    symbolic,  # noqa: F401
    vision,  # noqa: F401
)
from .base import COMMANDS, Command

__all__ = ["COMMANDS", "Command"]
