"""The CLI's output rules: numbers never cut in tables, a wide layout when stdout is not a terminal, and a command
module that fails to import breaks the CLI loudly instead of silently disappearing."""
from __future__ import annotations

import subprocess
import sys

from rich.console import Console

from formicary.cli._output import new_table


def test_narrow_terminal_wraps_numbers_instead_of_cutting_them():
    t = new_table(title="per layer")
    for name in ("op", "instructions", "share"):
        t.add_column(name)
    t.add_row("DEPTHWISE_CONV_2D", "41,302,940", "27.6 %")
    console = Console(width=24, record=True, file=open("/dev/null", "w"))
    console.print(t)
    text = console.export_text()
    assert "…" not in text
    # the second column's cell, read back across its wrapped lines
    column = "".join(line.split("│")[2].strip() for line in text.splitlines() if line.startswith("│"))
    assert column == "41,302,940"


def test_piped_output_uses_a_wide_layout():
    code = "from formicary.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, "boards"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)})
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) > 80  # not squeezed into 80 columns


def test_a_broken_command_module_fails_loudly():
    code = ("import sys; sys.modules['formicary.cli.report_cmd'] = None\n"
            "try:\n    import formicary.cli\nexcept ImportError as e:\n    print('LOUD', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOUD" in proc.stdout and "report_cmd" in proc.stdout
