"""formicary's project-local PlatformIO dev-platform: everything it needs is on PATH or in this folder."""
from platformio.public import PlatformBase


class FormicaryPlatform(PlatformBase):
    def is_embedded(self):
        return True
