"""Plain-text tables for the terminal."""


def format_table(rows, columns):
    """Formats `rows` (dicts) as an aligned text table.

    Args:
        rows: list of dicts.
        columns: list of `(key, header, format)`; `format` is a format spec
            such as `",d"` or `".4f"`, or None for `str`.

    Returns:
        The table as a string, header and rule included.
    """
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        line = []
        for key, _, spec in columns:
            value = row.get(key)
            line.append("-" if value is None else (format(value, spec) if spec else str(value)))
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]

    def render(line):
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(line, widths))
        )

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(cells[0]), rule] + [render(line) for line in cells[1:]])
