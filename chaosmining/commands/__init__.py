"""Built-in CLI commands; importing this package registers them in :data:`chaosmining.cli.COMMANDS`."""

from . import (
    rfe,  # noqa: F401
    symbolic,  # noqa: F401
    vision,  # noqa: F401
)
