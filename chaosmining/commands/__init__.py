"""Built-in CLI commands; importing this package registers them in :data:`chaosmining.cli.COMMANDS`."""

from . import (
    symbolic,  # noqa: F401
    vision,  # noqa: F401
)
