"""The virtual SBC: an aarch64 Debian bookworm system under qemu-system-aarch64, reachable by SSH on a loopback port.

Built once per machine from Debian and PyPI packages only (`python -m formicary.target.virtual_sbc build`, run by
scripts/bootstrap.sh as root), cached in `image_dir()`, booted per use with the disk opened `snapshot=on` (nothing
a session writes survives it). Inside the image:

- `/usr/bin/python3`: Debian's Python 3.11 with python3-numpy 1.24 and no TFLite runtime (a board without one);
- `/opt/tflite-runtime/bin/python3`: a venv over the system site-packages (numpy 1.24) with tflite-runtime 2.14;
- `/opt/litert/bin/python3`: a venv with ai-edge-litert 2.3 and numpy >= 2 (LiteRT 2.3 needs numpy 2,
  tflite-runtime 2.14 needs numpy < 2: hence two environments);
- `/mnt/full`: a 64 KiB tmpfs, for tests of a full disk;
- sshd accepting only the key made at build time, for root; its host key is made at build time too and written
  into a known_hosts file per boot, so clients check it strictly.

Why a full system VM and not a qemu-user chroot: the kernel, sshd, /proc and the memory figures are a real Linux
board's. Why an initramfs of virtio + ext4 modules only: the default initramfs takes over 15 minutes to build under
emulation. The root filesystem is made with mmdebstrap (its foreign stage runs under qemu-user-static through
binfmt_misc); the wheels are unpacked into it by the host's pip (no emulation needed), the ext4 image is made from
the folder with `mke2fs -d`. Latency measured in it is emulated time (TCG on this host), never a Pi's.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from formicary.errors import FormicaryError

BUILD_COMMAND = "sudo python -m formicary.target.virtual_sbc build"
IMAGE_FORMAT = 1                 # bump when the recipe changes: an image of another format is rebuilt
SUITE = "bookworm"
MIRRORS = (f"deb http://deb.debian.org/debian {SUITE} main",
           f"deb http://deb.debian.org/debian {SUITE}-updates main",
           f"deb http://deb.debian.org/debian-security {SUITE}-security main")
DEBIAN_PACKAGES = ("systemd-sysv", "udev", "kmod", "iproute2", "openssh-server", "python3", "python3-numpy",
                   "linux-image-arm64", "initramfs-tools")
INITRAMFS_MODULES = ("virtio_pci", "virtio_mmio", "virtio_blk", "ext4", "virtio_net")
# aarch64 wheels from PyPI: pip only takes the platform tags it is given, so the older manylinux ones too
WHEEL_PLATFORMS = ("manylinux_2_34_aarch64", "manylinux_2_28_aarch64", "manylinux_2_27_aarch64",
                   "manylinux_2_17_aarch64", "manylinux2014_aarch64")
GUEST_PYTHON = "3.11"            # bookworm's
VENVS = {
    # venv path in the image: (requirements, use the system site-packages: Debian's numpy 1.24)
    "/opt/tflite-runtime": (("tflite-runtime==2.14.0",), True),
    "/opt/litert": (("ai-edge-litert==2.3.*", "numpy>=2"), False),
}
SYSTEM_PYTHON = "/usr/bin/python3"
TFLITE_RUNTIME_PYTHON = "/opt/tflite-runtime/bin/python3"
LITERT_PYTHON = "/opt/litert/bin/python3"
FULL_DISK_MOUNT = "/mnt/full"
GUEST_IP = "10.0.2.15"
MACHINE = ("-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "2048")
KERNEL_CMDLINE = ("root=/dev/vda rw console=ttyAMA0 quiet loglevel=3 systemd.show_status=0 fsck.mode=skip "
                  "net.ifnames=0")
# units that cost boot time under emulation and do nothing for a throw-away session
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
                "fstrim.timer", "dpkg-db-backup.timer", "getty.target", "getty-static.service",
                "serial-getty@ttyAMA0.service", "systemd-networkd.service", "systemd-networkd.socket",
                "systemd-networkd-wait-online.service", "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
                "proc-sys-fs-binfmt_misc.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
                "sys-kernel-config.mount", "sys-fs-fuse-connections.mount", "dev-hugepages.mount", "dev-mqueue.mount",
                "kmod-static-nodes.service", "modprobe@configfs.service", "modprobe@dm_mod.service",
                "modprobe@drm.service", "modprobe@efi_pstore.service", "modprobe@fuse.service",
                "modprobe@loop.service", "systemd-update-utmp.service", "systemd-update-utmp-runlevel.service",
                "systemd-journal-flush.service", "systemd-sysusers.service", "systemd-pstore.service",
                "systemd-journal-catalog-update.service", "systemd-hwdb-update.service", "ldconfig.service")
# Boot to SSH is mostly waiting under emulation: udev's coldplug alone takes ~10-20 s. virtio_net is in the
# initramfs, so eth0 exists before the root is mounted; the address is set by one oneshot unit (not systemd-networkd,
# ~15 s to start) and sshd starts without waiting for sysinit/basic.target (it binds the wildcard address and needs
# only the root filesystem, /run and /dev, all there from the start). No `sshd -t` before it either.
NET_UNIT = f"""[Unit]
Description=Static address on QEMU's user network
DefaultDependencies=no
After=systemd-remount-fs.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/ip addr add {GUEST_IP}/24 dev eth0
ExecStart=/sbin/ip link set eth0 up
ExecStart=/sbin/ip route add default via 10.0.2.2

[Install]
WantedBy=sysinit.target
"""
SSH_DROPIN = """[Unit]
DefaultDependencies=no
After=systemd-remount-fs.service

[Service]
ExecStartPre=
"""

IMAGE_FILE = "rootfs.ext4"
KERNEL_FILE = "vmlinuz"
INITRD_FILE = "initrd.img"
KEY_FILE = "id_ed25519"
HOST_KEY_FILE = "ssh_host_ed25519_key.pub"
MANIFEST_FILE = "manifest.json"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SshEndpoint:
    """How to reach a booted virtual SBC: `ssh -i key_path -o UserKnownHostsFile=known_hosts -p port user@host`."""
    host: str            # "127.0.0.1"
    port: int            # the loopback host-forward to the guest's port 22
    user: str            # "root"
    key_path: Path       # private key made at build time (mode 0600)
    known_hosts: Path    # holds the image's host key for [127.0.0.1]:port

    def ssh_command(self, *remote: str) -> list[str]:
        """An OpenSSH client command line for this endpoint (strict host key checking, no prompts)."""
        return ["ssh", "-i", str(self.key_path), "-p", str(self.port), "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", "LogLevel=ERROR", f"{self.user}@{self.host}", *remote]

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def _candidate_dirs() -> list[Path]:
    out = []
    for var, sub in (("FORMICARY_VIRTUAL_SBC_DIR", ""), ("FORMICARY_CACHE_DIR", "virtual-sbc")):
        if os.environ.get(var):
            out.append(Path(os.environ[var]) / sub if sub else Path(os.environ[var]))
    from platformdirs import user_cache_dir

    out.append(Path(user_cache_dir("formicary")) / "virtual-sbc")
    return out


def image_dir() -> Path:
    """Where the image is: the first of $FORMICARY_VIRTUAL_SBC_DIR, $FORMICARY_CACHE_DIR/virtual-sbc and the user
    cache folder's virtual-sbc that holds a built image, else the first of them (where a build puts it). The image
    is one per machine: the test suite moves FORMICARY_CACHE_DIR into the test run and still finds it."""
    candidates = _candidate_dirs()
    return next((folder for folder in candidates if _manifest(folder) is not None), candidates[0])


def _manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    needed = (IMAGE_FILE, KERNEL_FILE, INITRD_FILE, KEY_FILE, HOST_KEY_FILE)
    if data.get("format") != IMAGE_FORMAT or not all((folder / name).is_file() for name in needed):
        return None
    return data


def image_status() -> dict:
    """Whether the image is built, where, how big, when, and the versions inside it (from the build's manifest)."""
    folder = image_dir()
    manifest = _manifest(folder)
    out: dict = {"built": manifest is not None, "dir": str(folder), "image": str(folder / IMAGE_FILE),
                 "build_command": BUILD_COMMAND, "searched": [str(p) for p in _candidate_dirs()]}
    if manifest is None:
        return out
    image = folder / IMAGE_FILE
    st = image.stat()
    out.update({
        "size_bytes": st.st_size,                          # the ext4 image's nominal size (a sparse file)
        "disk_bytes": st.st_blocks * 512,                  # what it takes on the host's disk
        "used_bytes": manifest.get("used_bytes"),          # files inside the image
        "built_at": manifest.get("built_at"),
        "build_seconds": manifest.get("build_seconds"),
        "versions": manifest.get("versions", {}),
        "pythons": {"system": SYSTEM_PYTHON, "tflite_runtime": TFLITE_RUNTIME_PYTHON, "litert": LITERT_PYTHON},
    })
    return out


# --- building ------------------------------------------------------------------------------------------------

def _run(cmd: list[str], log: Path, **kwargs) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)
    if result.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise FormicaryError(f"building the virtual SBC failed: `{cmd[0]}` exited with {result.returncode}.\n{tail}",
                             f"see the full log in {log}; then run `{BUILD_COMMAND} --force` again.")


def _check_build_tools() -> None:
    if os.geteuid() != 0:
        raise FormicaryError("building the virtual SBC needs root (mmdebstrap makes a root filesystem with device "
                             "nodes and root-owned files).", f"run `{BUILD_COMMAND}` (scripts/bootstrap.sh does "
                             "it when run as root).")
    needed = {"mmdebstrap": "mmdebstrap", "mke2fs": "e2fsprogs", "ssh-keygen": "openssh-client",
              "qemu-system-aarch64": "qemu-system-arm", "qemu-aarch64-static": "qemu-user-static"}
    missing = sorted({pkg for tool, pkg in needed.items() if shutil.which(tool) is None})
    if missing:
        raise FormicaryError(f"building the virtual SBC needs {', '.join(missing)}.",
                             f"apt-get install --no-install-recommends {' '.join(missing)} binfmt-support")


def _ensure_binfmt() -> None:
    """mmdebstrap's foreign stage runs arm64 binaries through qemu-user-static: binfmt_misc must be mounted and the
    qemu-aarch64 handler enabled (containers often have neither)."""
    root = Path("/proc/sys/fs/binfmt_misc")
    if not (root / "status").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(root)], capture_output=True, check=False)
    handler = root / "qemu-aarch64"
    if (not handler.exists() or "enabled" not in handler.read_text()) and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, check=False)
    if not handler.exists() or "enabled" not in handler.read_text():
        raise FormicaryError("cannot run arm64 programs here: binfmt_misc has no enabled qemu-aarch64 handler.",
                             "apt-get install qemu-user-static binfmt-support; mount -t binfmt_misc binfmt_misc "
                             "/proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64")


def _fetch_wheels(wheels: Path, log: Path) -> None:
    """aarch64 wheels for each venv, downloaded by the host's pip (cached: a rebuild needs no network for them)."""
    for venv, (requirements, _system) in VENVS.items():
        folder = wheels / Path(venv).name
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--only-binary=:all:",
               "--python-version", GUEST_PYTHON, "--implementation", "cp", "-d", str(folder)]
        for platform in WHEEL_PLATFORMS:
            cmd += ["--platform", platform]
        if venv == "/opt/tflite-runtime":
            cmd.append("--no-deps")              # numpy comes from Debian (1.24: tflite-runtime 2.14 needs < 2)
        _run(cmd + list(requirements), log)


def _make_venv(rootfs: Path, venv: str, requirements: tuple[str, ...], system_site: bool, wheels: Path,
               log: Path) -> None:
    """A venv laid out by hand (what `python3 -m venv --without-pip` makes), with the wheels installed into its
    site-packages by the host's pip for the guest's platform: no emulated pip run. pip byte-compiles them with the
    host's Python 3.11 (the same bytecode as the guest's 3.11): the guest's disk is a snapshot, so bytecode it wrote
    itself would be lost at every boot, and compiling numpy 2 under emulation costs seconds per import."""
    root = rootfs / venv.lstrip("/")
    site = root / "lib" / f"python{GUEST_PYTHON}" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir(exist_ok=True)
    with contextlib.suppress(FileExistsError):
        (root / "lib64").symlink_to("lib")
    for name in ("python", "python3", f"python{GUEST_PYTHON}"):
        link = root / "bin" / name
        if not link.is_symlink():
            link.symlink_to(f"/usr/bin/python{GUEST_PYTHON}")
    version = _guest_python_version(rootfs)
    (root / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = {'true' if system_site else 'false'}\n"
        f"version = {version}\nexecutable = /usr/bin/python{GUEST_PYTHON}\n")
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-index",
           "--find-links", str(wheels / Path(venv).name), "--only-binary=:all:", "--python-version", GUEST_PYTHON,
           "--implementation", "cp", "--target", str(site)]
    for platform in WHEEL_PLATFORMS:
        cmd += ["--platform", platform]
    if system_site:
        cmd.append("--no-deps")
    _run(cmd + list(requirements), log)
    # console scripts written by the host's pip point at the host's python: the agents never use them
    shutil.rmtree(site / "bin", ignore_errors=True)


def _guest_python_version(rootfs: Path) -> str:
    status = (rootfs / "var/lib/dpkg/status").read_text(errors="replace")
    match = re.search(rf"Package: python{GUEST_PYTHON}-minimal\n(?:.+\n)*?Version: ([0-9.]+)", status)
    return match.group(1) if match else GUEST_PYTHON


def _dpkg_version(rootfs: Path, package: str) -> str | None:
    status = (rootfs / "var/lib/dpkg/status").read_text(errors="replace")
    match = re.search(rf"^Package: {re.escape(package)}\n(?:.+\n)*?Version: (\S+)", status, re.MULTILINE)
    return match.group(1) if match else None


def _dist_version(site: Path, name: str) -> str | None:
    for info in site.glob(f"{name}-*.dist-info"):
        return info.name[len(name) + 1:-len(".dist-info")]
    return None


def _configure(rootfs: Path, key_pub: str, host_key_dir: Path) -> None:
    """Network, sshd, keys, mounts and boot-time trimming, written straight into the root filesystem folder."""
    etc = rootfs / "etc"
    (etc / "hostname").write_text("formicary-vsbc\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 formicary-vsbc\n")
    # a fixed machine id: an empty one makes every (snapshot) boot a "first boot" with its presets and jobs
    (etc / "machine-id").write_text(os.urandom(16).hex() + "\n")
    (etc / "fstab").write_text("/dev/vda / ext4 rw,noatime 0 1\n"
                               f"tmpfs {FULL_DISK_MOUNT} tmpfs size=64k,mode=1777 0 0\n")
    (rootfs / FULL_DISK_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    # QEMU's user network: the guest is 10.0.2.15, static (no DHCP wait); nothing beyond the host-forward reaches it
    units = etc / "systemd/system"
    (units / "formicary-net.service").write_text(NET_UNIT)
    (units / "multi-user.target.wants/systemd-networkd.service").unlink(missing_ok=True)
    for wants in (units / "multi-user.target.wants", units / "sysinit.target.wants"):
        wants.mkdir(parents=True, exist_ok=True)
        (wants / "formicary-net.service").unlink(missing_ok=True)
    (units / "sysinit.target.wants/formicary-net.service").symlink_to("/etc/systemd/system/formicary-net.service")
    (units / "ssh.service.d").mkdir(exist_ok=True)
    (units / "ssh.service.d/formicary.conf").write_text(SSH_DROPIN)
    journald = etc / "systemd/journald.conf.d"
    journald.mkdir(parents=True, exist_ok=True)
    (journald / "formicary.conf").write_text("[Journal]\nStorage=volatile\n")
    for unit in MASKED_UNITS:
        masked = units / unit
        if masked.is_symlink() or masked.exists():
            masked.unlink()
        masked.symlink_to("/dev/null")
    # sshd: the build's host key only, root by key only
    ssh = etc / "ssh"
    for old in ssh.glob("ssh_host_*"):
        old.unlink()
    for name in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
        shutil.copy2(host_key_dir / name, ssh / name)
    os.chmod(ssh / "ssh_host_ed25519_key", 0o600)
    conf = ssh / "sshd_config.d"
    conf.mkdir(exist_ok=True)
    (conf / "formicary.conf").write_text(
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUseDNS no\nMaxStartups 32:30:64\nMaxSessions 32\n"
        # no PAM session, motd or lastlog: each login is seconds faster under emulation (key auth is sshd's own)
        "UsePAM no\nPrintMotd no\nPrintLastLog no\n")
    dot_ssh = rootfs / "root/.ssh"
    dot_ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (dot_ssh / "authorized_keys").write_text(key_pub)
    os.chmod(dot_ssh, 0o700)
    os.chmod(dot_ssh / "authorized_keys", 0o600)


def _initramfs_hook(folder: Path) -> Path:
    """mmdebstrap essential hook: before the kernel is installed, limit its initramfs to the modules a virt board
    needs to mount its root (the default initramfs takes over 15 minutes to build under emulation)."""
    hook = folder / "initramfs-hook.sh"
    modules = "\\n".join(INITRAMFS_MODULES)
    hook.write_text("#!/bin/sh\nset -e\n"
                    'mkdir -p "$1/etc/initramfs-tools/conf.d"\n'
                    'printf "MODULES=list\\nCOMPRESS=gzip\\n" > "$1/etc/initramfs-tools/conf.d/formicary.conf"\n'
                    f'printf "{modules}\\n" > "$1/etc/initramfs-tools/modules"\n'
                    # the kernel's postinst makes the initramfs; the later initramfs-tools trigger would make it again
                    'echo update_initramfs=no > "$1/etc/initramfs-tools/update-initramfs.conf"\n')
    hook.chmod(0o755)
    return hook


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _stage(progress: Progress | None, description: str) -> Iterator[None]:
    if progress is not None:
        progress(description)
        yield
        return
    from formicary import progress as fm_progress

    with fm_progress.step(description):
        yield


def build_image(progress: Progress | None = None, *, force: bool = False, _rootfs: Path | None = None) -> Path:
    """Build the image into image_dir() unless a current one is there; return that folder. Idempotent and locked:
    concurrent callers wait for one build. `progress(message)` is called at each stage (default: the CLI's spinner)."""
    folder = image_dir()
    with _build_lock(folder):
        if not force and _manifest(folder) is not None:
            return folder
        _check_build_tools()
        _ensure_binfmt()
        started = time.perf_counter()
        log = folder / "build.log"
        log.write_text(f"virtual SBC build, {_dt.datetime.now(_dt.UTC).isoformat()}\n")
        work = Path(tempfile.mkdtemp(prefix="build-", dir=folder))
        try:
            rootfs = _rootfs or work / "rootfs"      # _rootfs: an existing mmdebstrap folder (recipe debugging)
            with _stage(progress, "downloading aarch64 wheels (PyPI)"):
                _fetch_wheels(folder / "wheels", log)
            if _rootfs is None:
                with _stage(progress, f"making the Debian {SUITE} arm64 root filesystem (mmdebstrap, 3-10 min)"):
                    _run(["mmdebstrap", "--arch=arm64", "--variant=minbase", "--mode=root",
                          "--aptopt=APT::Install-Recommends \"false\"", "--dpkgopt=force-confold",
                          "--dpkgopt=force-confdef", f"--include={','.join(DEBIAN_PACKAGES)}",
                          f"--essential-hook={_initramfs_hook(work)}", SUITE, str(rootfs), *MIRRORS], log)
            with _stage(progress, "installing the TFLite runtimes and configuring sshd"):
                keys = work / "keys"
                keys.mkdir()
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "formicary-virtual-sbc",
                      "-f", str(keys / KEY_FILE)], log)
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "formicary-virtual-sbc-host",
                      "-f", str(keys / "ssh_host_ed25519_key")], log)
                for venv, (requirements, system_site) in VENVS.items():
                    _make_venv(rootfs, venv, requirements, system_site, folder / "wheels", log)
                _configure(rootfs, (keys / f"{KEY_FILE}.pub").read_text(), keys)
                versions = _versions(rootfs)
                boot = rootfs / "boot"
                kernel = max(boot.glob("vmlinuz-*"))
                initrd = max(boot.glob("initrd.img-*"))
                versions["kernel"] = kernel.name[len("vmlinuz-"):]
            with _stage(progress, "making the ext4 image (mke2fs -d)"):
                used = _tree_bytes(rootfs)
                size_mb = used // (1 << 20) + 768             # room for a session's files (snapshot: discarded)
                image = work / IMAGE_FILE
                _run(["mke2fs", "-q", "-t", "ext4", "-L", "formicary-root", "-E", "root_owner=0:0",
                      "-d", str(rootfs), "-F", str(image), f"{size_mb}M"], log)
            # the old image stays usable until here: a failed rebuild leaves it as it was
            (folder / MANIFEST_FILE).unlink(missing_ok=True)
            for name, source in ((KERNEL_FILE, kernel), (INITRD_FILE, initrd)):
                shutil.copyfile(source, folder / name)
            os.replace(image, folder / IMAGE_FILE)
            for name in (KEY_FILE, f"{KEY_FILE}.pub"):
                os.replace(keys / name, folder / name)
            os.chmod(folder / KEY_FILE, 0o600)
            os.replace(keys / "ssh_host_ed25519_key.pub", folder / HOST_KEY_FILE)
            manifest = {"format": IMAGE_FORMAT, "built_at": _dt.datetime.now(_dt.UTC).isoformat(
                timespec="seconds"), "build_seconds": round(time.perf_counter() - started, 1),
                        "used_bytes": used, "versions": versions, "suite": SUITE,
                        "packages": list(DEBIAN_PACKAGES), "machine": list(MACHINE)}
            (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return folder


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _versions(rootfs: Path) -> dict:
    site = "lib/python3.11/site-packages"
    tfl = rootfs / "opt/tflite-runtime" / site
    lrt = rootfs / "opt/litert" / site
    return {"debian": (rootfs / "etc/debian_version").read_text().strip(),
            "python": _guest_python_version(rootfs),
            "system_numpy": _dpkg_version(rootfs, "python3-numpy"),
            "tflite_runtime": _dist_version(tfl, "tflite_runtime"),
            "ai_edge_litert": _dist_version(lrt, "ai_edge_litert"),
            "litert_numpy": _dist_version(lrt, "numpy"),
            "openssh_server": _dpkg_version(rootfs, "openssh-server")}


# --- booting -------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ssh_banner(port: int, timeout: float) -> bool:
    """True once sshd answers: QEMU's user network accepts the TCP connection before the guest listens, so only
    the server's identification line means it is up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


class VirtualSbc:
    """Boots the virtual SBC and waits until SSH logs in; `with VirtualSbc() as endpoint:` yields its SshEndpoint.

    QEMU runs in its own process group (killed as a whole on exit), the disk is opened snapshot=on (the image is
    never written), the network is QEMU's user network restricted to one loopback host-forward for SSH.
    """

    def __init__(self, *, port: int | None = None, boot_timeout: float = 240.0, memory_mb: int = 2048,
                 cpus: int = 2) -> None:
        self.port = port
        self.boot_timeout = boot_timeout
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.process: subprocess.Popen | None = None
        self.endpoint: SshEndpoint | None = None
        self.boot_seconds: float | None = None
        self._run_dir: Path | None = None

    @property
    def console_log(self) -> Path | None:
        return self._run_dir / "console.log" if self._run_dir else None

    def command(self, folder: Path, port: int) -> list[str]:
        machine = ["-M", "virt", "-cpu", "cortex-a72", "-smp", str(self.cpus), "-m", str(self.memory_mb)]
        return ["qemu-system-aarch64", *machine, "-nographic", "-monitor", "none", "-no-reboot",
                "-serial", f"file:{self._run_dir / 'console.log'}",
                "-kernel", str(folder / KERNEL_FILE), "-initrd", str(folder / INITRD_FILE),
                "-append", KERNEL_CMDLINE,
                "-drive", f"file={folder / IMAGE_FILE},format=raw,if=none,id=hd0,snapshot=on",
                "-device", "virtio-blk-pci,drive=hd0",
                "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-{GUEST_IP}:22",
                "-device", "virtio-net-pci,netdev=net0,romfile="]

    def __enter__(self) -> SshEndpoint:
        folder = image_dir()
        if _manifest(folder) is None:
            looked = ", ".join(str(p) for p in _candidate_dirs())
            raise FormicaryError(f"the virtual SBC image is not built (looked in {looked}).",
                                 f"build it once per machine (~3 min, as root): `{BUILD_COMMAND}` "
                                 "(scripts/bootstrap.sh does this when run as root).")
        if shutil.which("qemu-system-aarch64") is None:
            raise FormicaryError("qemu-system-aarch64 is not installed.",
                                 "apt-get install --no-install-recommends qemu-system-arm")
        self._run_dir = Path(tempfile.mkdtemp(prefix="formicary-vsbc-"))
        port = self.port or _free_port()
        started = time.perf_counter()
        self.process = subprocess.Popen(self.command(folder, port), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=open(self._run_dir / "qemu.err", "w"),
                                        start_new_session=True)
        try:
            self.endpoint = self._wait_for_ssh(folder, port, started)
        except BaseException:
            self._stop()
            raise
        self.boot_seconds = round(time.perf_counter() - started, 2)
        return self.endpoint

    def _wait_for_ssh(self, folder: Path, port: int, started: float) -> SshEndpoint:
        host_key = (folder / HOST_KEY_FILE).read_text().split()
        known_hosts = self._run_dir / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        key = self._run_dir / KEY_FILE          # a private copy: ssh refuses keys others can read, whoever built it
        shutil.copyfile(folder / KEY_FILE, key)
        os.chmod(key, 0o600)
        endpoint = SshEndpoint("127.0.0.1", port, "root", key, known_hosts)
        deadline = started + self.boot_timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                err = (self._run_dir / "qemu.err").read_text(errors="replace").strip()
                raise FormicaryError(f"the virtual SBC's QEMU exited with {self.process.returncode} while booting: "
                                     f"{err[-500:] or 'no message'}",
                                     "check that the port is free and the image is intact; rebuild with "
                                     f"`{BUILD_COMMAND} --force` if it is not.")
            if _ssh_banner(port, 2.0):
                probe = subprocess.run(endpoint.ssh_command("true"), capture_output=True, text=True, timeout=60,
                                       check=False)
                if probe.returncode == 0:
                    return endpoint
            time.sleep(0.5)
        tail = ""
        if self.console_log and self.console_log.exists():
            tail = "\n".join(self.console_log.read_text(errors="replace").splitlines()[-10:])
        raise FormicaryError(f"the virtual SBC did not answer SSH within {self.boot_timeout:.0f} s.\n{tail}",
                             "the machine may be overloaded: retry, or raise boot_timeout; the console log is "
                             f"{self.console_log}.")

    def _stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def __exit__(self, *exc: object) -> None:
        self._stop()


# --- command line ----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m formicary.target.virtual_sbc",
                                     description="Build, inspect and boot the virtual SBC (aarch64 Debian under "
                                                 "qemu-system-aarch64, SSH on a loopback port).")
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the image once per machine (root; ~3 min); no-op when built")
    p_build.add_argument("--force", action="store_true", help="rebuild even when a current image is there")
    p_build.add_argument("--json", action="store_true")
    p_status = sub.add_parser("status", help="is the image built, where, versions inside")
    p_status.add_argument("--json", action="store_true")
    p_boot = sub.add_parser("boot", help="boot it and print how to SSH in; runs until Ctrl-C")
    p_boot.add_argument("--port", type=int, default=None)
    p_boot.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build_image(force=args.force)
            status = image_status()
            if args.json:
                print(json.dumps(status, indent=2))
            else:
                print(f"virtual SBC image: {status['image']} ({status['used_bytes'] / 1e6:.0f} MB used), "
                      f"built {status['built_at']}")
            return 0
        if args.command == "status":
            status = image_status()
            if args.json:
                print(json.dumps(status, indent=2))
            elif status["built"]:
                v = status["versions"]
                print(f"built {status['built_at']} in {status['dir']}: Debian {v.get('debian')}, kernel "
                      f"{v.get('kernel')}, Python {v.get('python')}, tflite-runtime {v.get('tflite_runtime')}, "
                      f"ai-edge-litert {v.get('ai_edge_litert')}")
            else:
                print(f"not built (looked in {status['dir']}); build it with `{BUILD_COMMAND}`")
            return 0
        # stop on SIGTERM/SIGHUP as on Ctrl-C, so that QEMU's process group is always killed (a background job
        # of a non-interactive shell does not even get SIGINT)
        def _stop(signum, frame):
            raise KeyboardInterrupt
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _stop)
        vm = VirtualSbc(port=args.port)
        with vm as endpoint:
            if args.json:
                print(json.dumps({**endpoint.to_dict(), "boot_seconds": vm.boot_seconds}), flush=True)
            else:
                print("virtual SBC up; connect with:\n  " + " ".join(endpoint.ssh_command()), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        return 0
    except FormicaryError as err:
        if getattr(args, "json", False):
            print(json.dumps({"error": err.to_dict()}, indent=2))
        else:
            print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
