"""The real `formicary` CLI entry point run in this process (TensorFlow already imported by the session), for
tests that would otherwise pay a second TensorFlow start-up in a subprocess."""
from __future__ import annotations

import sys

import pytest


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """(exit code, stdout) of `formicary ARGS...`."""
    from formicary.cli import main

    monkeypatch.setattr(sys, "argv", ["formicary", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().out
