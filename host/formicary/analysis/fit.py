"""Does a model fit a board? Flash holds the whole flatbuffer (weights included); RAM holds the TFLM arena."""
from __future__ import annotations


def board_fit(*, board_name: str, flash_available: int, ram_available: int, flash_needed: int,
              ram_needed: int | None, ram_method: str) -> dict:
    """Fit verdict with margins (negative margin = bytes missing) and a reason when it does not fit.

    `ram_needed` is None when the arena could not be measured (model refused by TFLM): RAM is then unknown
    and the model is not declared fitting.
    """
    flash_margin = flash_available - flash_needed
    ram_margin = None if ram_needed is None else ram_available - ram_needed
    reasons = []
    if flash_margin < 0:
        reasons.append(f"model needs {flash_needed:,} B of flash, {board_name} has {flash_available:,} B "
                       f"({-flash_margin:,} B too many)")
    if ram_margin is None:
        reasons.append("RAM need unknown: the TFLM arena could not be measured")
    elif ram_margin < 0:
        reasons.append(f"TFLM arena needs {ram_needed:,} B of RAM, {board_name} has {ram_available:,} B "
                       f"({-ram_margin:,} B too many)")
    fits = not reasons
    return {
        "board": board_name,
        "fits": fits,
        "flash": {"needed_bytes": flash_needed, "available_bytes": flash_available, "margin_bytes": flash_margin,
                  "method": "flatbuffer size (weights + graph), runtime code not included"},
        "ram": {"needed_bytes": ram_needed, "available_bytes": ram_available, "margin_bytes": ram_margin,
                "method": ram_method},
        "margin_bytes": min(m for m in (flash_margin, ram_margin) if m is not None),
        "reason": None if fits else "; ".join(reasons),
    }
