"""Hardware-in-the-loop testing: the pytest plugin (`plugin`, entry point `pytest11: formicary`), docs/hil.md."""
