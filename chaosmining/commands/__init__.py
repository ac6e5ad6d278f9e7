"""Built-in CLI commands; importing this package registers them in :data:`chaosmining.cli.COMMANDS`."""

from . import (
    audio,  # noqa: F401
    evaluate,  # noqa: F401
    results,  # noqa: F401
    rfe,  # noqa: F401
    symbolic,  # noqa: F401
    vision,  # noqa: F401
)
