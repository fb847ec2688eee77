"""User applications around `formicary export` libraries, as a user would write them: a PlatformIO project and a
CMake project (arm-none-eabi toolchain file) for qemu-m4, whose main.c runs every model once on given inputs and
prints the outputs in hex on the board's UART; and the runner that starts the ELF on the virtual board and
collects those lines. The board support (startup code, linker script) is formicary's dev-platform's, as a user
would take it from their vendor; nothing else of the checkout is used by the applications."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
from formicary.boards import PLATFORM_DIR, load_board

DONE = "done"


def app_main(models: list[tuple[str, list[np.ndarray]]]) -> str:
    """main.c: for each (model name, inputs) write the inputs, invoke, print `<name> rc=<rc> out<i>=<hex>`."""
    lines = ["/* A user application: runs the exported models once each and prints their outputs. */",
             '#include <stdint.h>', '#include <string.h>',
             '#include "formicary_models.h"' if models else "/* no model: the application alone */", "",
             "/* mps2-an386 CMSDK UART0 */",
             "#define UART_DATA (*(volatile uint32_t *)0x40004000u)",
             "#define UART_STATE (*(volatile uint32_t *)0x40004004u)",
             "#define UART_CTRL (*(volatile uint32_t *)0x40004008u)",
             "#define UART_BAUDDIV (*(volatile uint32_t *)0x40004010u)", "",
             "static void put(char c) { while (UART_STATE & 1u) { } UART_DATA = (uint32_t)(uint8_t)c; }",
             "static void puts_(const char *s) { while (*s) put(*s++); }",
             "static void hex(const uint8_t *p, size_t n)",
             "{", '    static const char d[] = "0123456789abcdef";',
             "    for (size_t i = 0; i < n; ++i) { put(d[p[i] >> 4]); put(d[p[i] & 15u]); }", "}",
             "static void num(int v)",
             "{",
             "    char b[12];",
             "    int n = 0;",
             "    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;",
             "    if (v < 0) put('-');",
             "    do { b[n++] = (char)('0' + u % 10u); u /= 10u; } while (u);",
             "    while (n) put(b[--n]);",
             "}",
             ""]
    for name, inputs in models:
        for i, x in enumerate(inputs):
            data = ", ".join(str(int(b)) for b in np.ascontiguousarray(x).view(np.uint8).ravel())
            lines.append(f"static const uint8_t {name}_in{i}[{x.nbytes}] = {{{data}}};")
    lines += ["", "int main(void)", "{", "    UART_BAUDDIV = 16u;", "    UART_CTRL = 1u; /* TX enable */"]
    for name, inputs in models:
        lines.append("    {")
        for i in range(len(inputs)):
            lines.append(f"        memcpy({name}_input_data({i}), {name}_in{i}, sizeof {name}_in{i});")
        lines += [f"        int rc = {name}_invoke();",
                  f'        puts_("{name} rc="); num(rc);',
                  f"        for (int o = 0; o < {name.upper()}_NUM_OUTPUTS; ++o) {{",
                  '            puts_(" out"); num(o); put(\'=\');',
                  f"            hex((const uint8_t *){name}_output_data(o), {name}_output_bytes(o));",
                  "        }", "        put('\\n');", "    }"]
    lines += [f'    puts_("{DONE}\\n");', "    return 0;", "}", ""]
    return "\n".join(lines)


def platformio_project(project: Path, board: str = "qemu-m4") -> Path:
    """platformio.ini of a user project on formicary's offline dev-platform; libraries go in `lib/`."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "src").mkdir(exist_ok=True)
    (project / "platformio.ini").write_text(
        "[env:app]\n"
        f"platform = symlink://{PLATFORM_DIR}\n"
        f"board = {board}\n"
        "build_flags = -O2\n")
    return project


def cmake_project(project: Path, library: Path, board: str = "qemu-m4") -> Path:
    """A CMake application with an arm-none-eabi toolchain file, the board's startup code and linker script."""
    b = load_board(board)
    project.mkdir(parents=True, exist_ok=True)
    flags = " ".join(b.cpu_flags)
    (project / "arm-none-eabi.cmake").write_text(
        "set(CMAKE_SYSTEM_NAME Generic)\n"
        "set(CMAKE_SYSTEM_PROCESSOR arm)\n"
        "set(CMAKE_C_COMPILER arm-none-eabi-gcc)\n"
        "set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)\n"
        "set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)\n"
        f'set(CMAKE_C_FLAGS_INIT "{flags}")\n'
        f'set(CMAKE_EXE_LINKER_FLAGS_INIT "{flags} --specs=nano.specs --specs=nosys.specs -Wl,--gc-sections")\n')
    ld = (PLATFORM_DIR / "ldscripts" / "cortexm.ld.in").read_text()
    mem = b.memory
    for key, value in (("FLASH_ORIGIN", mem.flash_origin), ("FLASH_BYTES", mem.flash_bytes),
                       ("RAM_ORIGIN", mem.ram_origin), ("RAM_BYTES", mem.ram_bytes), ("STACK_BYTES", 8192)):
        ld = ld.replace(f"@{key}@", f"0x{int(value):08X}")
    (project / "board.ld").write_text(ld)
    (project / "startup.c").write_text((PLATFORM_DIR / "startup" / "startup_cortexm.c").read_text())
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\n"
        "project(app C)\n"
        f"add_subdirectory({library.as_posix()} formicary_models)\n"
        "add_executable(app.elf main.c startup.c)\n"
        "target_compile_options(app.elf PRIVATE -O2 -Wall -Wextra)\n"
        "target_link_libraries(app.elf PRIVATE formicary::models)\n"
        "target_link_options(app.elf PRIVATE -T${CMAKE_CURRENT_SOURCE_DIR}/board.ld)\n")
    return project


def run_on_virtual_board(elf: Path, board: str = "qemu-m4", timeout: float = 60.0) -> list[str]:
    """Start ELF on the virtual board (formicary's QEMU launcher) and return the UART lines up to `done`."""
    from formicary.device.qemu import launch

    q = launch(board, elf)
    try:
        port = int(q.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            q.resume()
            sock.settimeout(1.0)
            buf = b""
            deadline = time.monotonic() + timeout
            while f"\n{DONE}\n".encode() not in b"\n" + buf and time.monotonic() < deadline:
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    q.check_alive()
                    continue
                if not chunk:
                    break
                buf += chunk
    finally:
        q.close()
    lines = buf.decode(errors="replace").splitlines()
    assert DONE in lines, f"the application did not finish on {board}: {lines[-5:]}"
    return lines[:lines.index(DONE)]


def parse_outputs(lines: list[str]) -> dict[str, tuple[int, list[bytes]]]:
    """{model: (rc, [output bytes...])} from the application's lines."""
    out = {}
    for line in lines:
        name, rest = line.split(" rc=", 1)
        parts = rest.split(" ")
        out[name] = (int(parts[0]), [bytes.fromhex(p.split("=", 1)[1]) for p in parts[1:]])
    return out
