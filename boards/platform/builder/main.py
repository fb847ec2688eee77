# SCons build script of formicary's dev-platform: arm-none-eabi-* from PATH, newlib-nano, a linker script
# generated from the board's memory map, and our C startup code. Nothing is fetched from a registry.
import os
import re
import shlex
import shutil
import sys

from SCons.Script import AlwaysBuild, Builder, COMMAND_LINE_TARGETS, Default, DefaultEnvironment  # noqa: F401

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

PLATFORM_DIR = platform.get_dir()
PREFIX = "arm-none-eabi-"

if not shutil.which(PREFIX + "gcc"):
    sys.stderr.write(
        "Error: arm-none-eabi-gcc is not on PATH.\n"
        "  fix: apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi\n")
    env.Exit(1)

cpu_flags = list(board.get("build.cpu_flags", []))
memory = board.get("build.formicary_memory")
defines = board.get("build.formicary_defines", {})

env.Replace(
    AR=PREFIX + "gcc-ar",
    AS=PREFIX + "as",
    CC=PREFIX + "gcc",
    CXX=PREFIX + "g++",
    GDB=PREFIX + "gdb",
    OBJCOPY=PREFIX + "objcopy",
    RANLIB=PREFIX + "gcc-ranlib",
    SIZETOOL=PREFIX + "size",
    ARFLAGS=["rc"],
    SIZEPROGREGEXP=r"^(?:\.text|\.data|\.rodata|\.ARM\.exidx|\.init_array|\.preinit_array|\.fini_array)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.bss|\.stack)\s+(\d+).*",
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
    PROGSUFFIX=".elf",
)

# The optimisation level is the project's: host/formicary/build.py puts it in build_flags (OPTIMIZE_FLAGS).
# Only a project that names none gets DEFAULT_OPTIMIZE, so exactly one -O reaches the compiler.
DEFAULT_OPTIMIZE = "-Os"


def _project_optimize():
    raw = env.GetProjectOption("build_flags", [])
    tokens = [t for line in ([raw] if isinstance(raw, str) else raw) for t in shlex.split(str(line))]
    levels = [t for t in tokens if re.fullmatch(r"-O(?:[0-3sgz]|fast)?", t)]
    return levels[-1] if levels else None


project_optimize = _project_optimize()
common = cpu_flags + ([] if project_optimize else [DEFAULT_OPTIMIZE]) + [
    "-g3", "-ffunction-sections", "-fdata-sections", "-fno-common"]
env.Append(
    ASFLAGS=cpu_flags + ["-x", "assembler-with-cpp"],
    CCFLAGS=common + ["-Wall", "-Wextra"],
    CFLAGS=["-std=c11"],
    CXXFLAGS=["-std=c++17", "-fno-exceptions", "-fno-rtti"],
    CPPDEFINES=[(k, v) for k, v in defines.items()]
    + [("FM_BOARD_NAME", env.StringifyMacro(env.subst("$BOARD")))],
    LINKFLAGS=cpu_flags + [project_optimize or DEFAULT_OPTIMIZE, "-Wl,--gc-sections", "--specs=nano.specs",
                           "--specs=nosys.specs", "-Wl,-Map,${BUILD_DIR}/firmware.map", "-Wl,--print-memory-usage"],
    LIBS=["c", "m", "gcc", "nosys"],
)

# Linker script from the board's memory map (boards/<board>.toml -> board JSON -> here).
stack_bytes = int(board.get("build.formicary_stack_bytes", 8192))
build_dir = env.subst("$BUILD_DIR")
os.makedirs(build_dir, exist_ok=True)
with open(os.path.join(PLATFORM_DIR, "ldscripts", "cortexm.ld.in"), encoding="utf8") as fp:
    ld = fp.read()
for key, value in (("FLASH_ORIGIN", memory["flash_origin"]), ("FLASH_BYTES", memory["flash_bytes"]),
                   ("RAM_ORIGIN", memory["ram_origin"]), ("RAM_BYTES", memory["ram_bytes"]),
                   ("STACK_BYTES", stack_bytes)):
    ld = ld.replace("@%s@" % key, "0x%08X" % int(value))
ld_path = os.path.join(build_dir, "formicary.ld")
with open(ld_path, "w", encoding="utf8") as fp:
    fp.write(ld)
env.Replace(LDSCRIPT_PATH=ld_path)

env.Append(BUILDERS=dict(
    ElfToBin=Builder(action=env.VerboseAction("$OBJCOPY -O binary $SOURCES $TARGET", "Building $TARGET"),
                     suffix=".bin"),
    ElfToHex=Builder(action=env.VerboseAction("$OBJCOPY -O ihex -R .eeprom $SOURCES $TARGET", "Building $TARGET"),
                     suffix=".hex"),
))

# Startup code and vector table are part of the platform, linked as objects (they reference main()).
env.BuildSources(os.path.join("$BUILD_DIR", "FormicaryStartup"), os.path.join(PLATFORM_DIR, "startup"))

target_elf = env.BuildProgram()
target_bin = env.ElfToBin(os.path.join("$BUILD_DIR", "${PROGNAME}"), target_elf)
target_hex = env.ElfToHex(os.path.join("$BUILD_DIR", "${PROGNAME}"), target_elf)
env.Depends(target_bin, "checkprogsize")
AlwaysBuild(env.Alias("nobuild", target_bin))
target_buildprog = env.Alias("buildprog", [target_bin, target_hex], target_bin)

# Upload. Virtual boards are "flashed" by starting QEMU from formicary (`formicary flash`), which keeps the
# serial session; real boards use the usual tools from PATH.
protocol = env.subst("$UPLOAD_PROTOCOL") or board.get("upload.protocol", "")
if protocol == "qemu":
    upload_actions = [env.VerboseAction(
        "%s -m formicary.device.qemu --board $BOARD --elf $SOURCE" % sys.executable.replace("\\", "/"),
        "Starting QEMU for $BOARD")]
    upload_source = target_elf
elif protocol == "stlink":
    env.Replace(UPLOADER="st-flash", UPLOADERFLAGS=["--reset", "write"],
                UPLOADCMD="$UPLOADER $UPLOADERFLAGS $SOURCE 0x%08X" % int(memory["flash_origin"]))
    upload_actions = [env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE")]
    upload_source = target_bin
elif protocol == "openocd":
    env.Replace(UPLOADER="openocd",
                UPLOADCMD='$UPLOADER $UPLOAD_FLAGS -c "program {$SOURCE} verify reset exit"')
    upload_actions = [env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE")]
    upload_source = target_elf
elif protocol == "jlink":
    env.Replace(UPLOADER="nrfjprog",
                UPLOADCMD="$UPLOADER --program $SOURCE --sectorerase --verify --reset")
    upload_actions = [env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE")]
    upload_source = target_hex
elif protocol == "picotool":
    env.Replace(UPLOADER="picotool", UPLOADCMD="$UPLOADER load -x $SOURCE")
    upload_actions = [env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE")]
    upload_source = target_elf
else:
    upload_actions = [env.VerboseAction("echo 'no upload protocol for $BOARD' && false", "Uploading")]
    upload_source = target_elf

AlwaysBuild(env.Alias("upload", upload_source, upload_actions))
Default([target_buildprog, env.Alias("size", target_elf, env.VerboseAction("$SIZEPRINTCMD", "Calculating size"))])
