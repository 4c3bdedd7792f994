"""``charter`` run in-process on one test database (click's runner)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from authserver.cli.main import charter


@dataclass
class Charter:
    """Runs ``charter --data-dir … --database-url … ARGS`` in-process."""

    data_dir: Path
    database_url: str

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        runner = CliRunner()
        return runner.invoke(
            charter,
            ["--data-dir", str(self.data_dir), "--database-url", self.database_url, *args],
            input=input,
            env=env,
            catch_exceptions=False,
        )
