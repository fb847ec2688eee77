"""Targets: get a model's firmware running somewhere and hand back a link to it.

`firmware` is the one firmware cache (build when needed, reuse otherwise), `bringup` brings a board to "running
this firmware" and returns a link (QEMU started here, or a serial port, flashed first when it runs another
model), `flash` puts a firmware on a board, `host` builds generated C for this computer (verify, sanitizers).
"""
