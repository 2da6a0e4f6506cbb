"""docs/api.md's example script runs as written against a real lab (and cleans up)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_the_documented_api_example_runs() -> None:
    text = DOC.read_text()
    section = text[text.index("## Example") :]
    script = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(script, str(DOC), "exec"), {"__name__": "api_example"})
