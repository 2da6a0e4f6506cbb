"""Text grids: columns padded by hand into one rich Text.

Panels re-render up to ten times a second; a rich Table renders every cell through padding
and measurement (about 20 ms for the 9-replica nodes table, most of the dashboard's CPU
time). Columns whose widths are already known only need padding, which costs next to
nothing, so the nodes, links and faults panels lay their grids out here.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text


def cell(text: Text, width: int, justify: str = "left") -> Text:
    """`text` padded (or cut with an ellipsis) to exactly `width` cells."""
    out = text.copy()
    if out.cell_len > width:
        out.truncate(width, overflow="ellipsis")
    out.align("right" if justify == "right" else "left", width)  # type: ignore[arg-type]
    return out


def grid(
    header: Sequence[str] | None,
    rows: Sequence[Sequence[Text]],
    widths: Sequence[int],
    justify: Sequence[str],
    row_styles: Sequence[str] | None = None,
    header_style: str = "bold",
) -> Text:
    """One line per row, columns separated by one space. A row's style is its base: the
    cells' own styles (a red ✕, a yellow 'paused') show on top of it."""
    lines: list[Text] = []
    if header is not None:
        line = Text(style=header_style)
        for i, h in enumerate(header):
            if i:
                line.append(" ")
            line.append_text(cell(Text(h), widths[i], justify[i]))
        lines.append(line)
    for r, row in enumerate(rows):
        line = Text(style=row_styles[r] if row_styles else "")
        for i, c in enumerate(row):
            if i:
                line.append(" ")
            line.append_text(cell(c, widths[i], justify[i]))
        lines.append(line)
    out = Text("\n", no_wrap=True, overflow="crop").join(lines)
    out.no_wrap, out.overflow = True, "crop"
    return out


def row_styles_of(text: Text) -> list[str]:
    """The base style of each line of a grid (for tests: which rows are highlighted)."""
    out = []
    for line in text.split("\n"):
        whole = [str(s.style) for s in line.spans if s.start == 0 and s.end >= len(line)]
        out.append(whole[0] if whole else "")
    return out
