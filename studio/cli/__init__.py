"""`seed-studio`, the command line: one module per command group, the app itself in `main`.

`app` and `main` are re-exported here for the `seed-studio = "studio.cli:main"` entry point and for tests
(`from studio.cli import app`); `python -m studio.cli` runs `main` through `__main__`.
"""

from studio.cli.main import app, main

__all__ = ["app", "main"]
