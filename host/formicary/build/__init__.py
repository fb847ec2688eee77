"""The build stage: generated model C + formicary-rt → a PlatformIO project for a board → firmware ELF."""
from formicary.build.project import (
    DEFAULT_OPTIMIZE,
    FIRMWARE_MODES,
    OPTIMIZE_FLAGS,
    BuildResult,
    build_model,
    build_project,
    elf_sizes,
    firmware_mode_flags,
    generate_project,
    optimize_flags,
    read_build_info,
    require_firmware_mode,
)

__all__ = ["DEFAULT_OPTIMIZE", "FIRMWARE_MODES", "OPTIMIZE_FLAGS", "BuildResult", "build_model", "build_project",
           "elf_sizes", "firmware_mode_flags", "generate_project", "optimize_flags", "read_build_info",
           "require_firmware_mode"]
