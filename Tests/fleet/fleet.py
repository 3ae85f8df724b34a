"""A test fleet of real Debian hosts on this machine, for Steward's engine, users, backups and rollouts tests.

Each host is a Debian bookworm minbase tree (openssh-server, python3, sudo, restic) made once with debootstrap and cached in
/var/cache/steward-fleet/base, then overlay-mounted per host, so every host has a filesystem of its own. A host has
its own host keys, its own hostname (a UTS namespace), /proc and /dev bind-mounted, a `steward` user with
passwordless sudo, and its own sshd on 127.0.0.1 at its own port. Root only. Everything is torn down on exit.

Hosts can reboot the way a container does. A host's /proc/sys/kernel/random/boot_id is a file of its own, and its
/usr/sbin/shutdown asks the fleet for a reboot. The fleet then kills every process whose root is that host's tree,
clears /run/reboot-required, gives the host a new boot id, and starts its sshd again after a short "boot". The real
kernel is never touched. `host.reboots` lists (down, up) monotonic times.

    with Fleet(2, authorized_key=public_key_text) as fleet:
        for host in fleet.hosts: print(host.name, host.port, host.root)

`Fleet(1, boots_systemd=True)` makes hosts that boot systemd in a `systemd-nspawn -b` container instead (an overlay
layer with systemd, systemd-sysv and dbus, cached beside the base), for services.

Run `python3 Tests/fleet/fleet.py --smoke` (or `--smoke-systemd`) to build the cache and check two hosts answer over SSH.
"""
import ctypes
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

CACHE = pathlib.Path(os.environ.get("STEWARD_FLEET_CACHE", "/var/cache/steward-fleet"))
BASE = CACHE / "base"
MIRROR = os.environ.get("STEWARD_FLEET_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ["openssh-server", "python3", "python3-apt", "sudo", "restic", "dnf", "rpm", "iproute2", "cron"]
USER = "steward"
CLONE_NEWUTS = 0x04000000
BOOT_SECONDS = 2.0
SHUTDOWN = """#!/bin/sh
# Test fleet host: a reboot is carried out from outside by the fleet, which restarts this host's processes with a new
# boot id (as a container restarts). The request returns at once, as `shutdown -r` does.
echo "$(date +%s) shutdown $*" >> /var/log/fleet-shutdown.log
: > /run/fleet-reboot-requested
"""


def ensure_base() -> pathlib.Path:
    """Build the cached Debian tree once (about a minute); later runs reuse it."""
    marker = BASE / ".steward-fleet-complete"
    recipe = "debootstrap minbase bookworm + " + " ".join(PACKAGES) + "\n"
    if marker.exists() and marker.read_text() == recipe:
        return BASE
    # A cache made with another package list is rebuilt (no fleet may be running from it at this point).
    if os.geteuid() != 0:
        raise PermissionError("the test fleet needs root (debootstrap, mounts, chroot)")
    building = CACHE / "base.partial"
    shutil.rmtree(building, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), "bookworm", str(building), MIRROR],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # No host keys in the shared tree: each host makes its own.
    for key in (building / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (building / ".steward-fleet-complete").write_text(recipe)
    shutil.rmtree(BASE, ignore_errors=True)
    building.rename(BASE)
    return BASE


SYSTEMD_PACKAGES = ["systemd", "systemd-sysv", "dbus"]


def ensure_systemd_layer(base: pathlib.Path) -> pathlib.Path:
    """What a host that boots systemd adds to the base tree (systemd, systemd-sysv, dbus): an overlay layer made once by
    installing them over the base with apt, cached beside it. Rebuilt when the base or the package list changes."""
    layer = CACHE / "systemd-layer"
    marker = layer / ".steward-fleet-complete"
    recipe = (base / ".steward-fleet-complete").read_text() + " + " + " ".join(SYSTEMD_PACKAGES) + "\n"
    if marker.exists() and marker.read_text() == recipe:
        return layer
    building = CACHE / "systemd-layer.partial"
    shutil.rmtree(building, ignore_errors=True)
    for part in ("upper", "work", "root"):
        (building / part).mkdir(parents=True)
    root = building / "root"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={base},upperdir={building / 'upper'},workdir={building / 'work'}", str(root)], check=True)
    try:
        subprocess.run(["mount", "--bind", "/proc", str(root / "proc")], check=True)
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        subprocess.run(["chroot", str(root), "apt-get", "install", "-y", "-q", "--no-install-recommends", *SYSTEMD_PACKAGES],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"})
        subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True)
    finally:
        subprocess.run(["umount", "--lazy", str(root / "proc")], check=False)
        subprocess.run(["umount", "--lazy", str(root)], check=False)
    (building / "upper/.steward-fleet-complete").write_text(recipe)
    shutil.rmtree(layer, ignore_errors=True)
    (building / "upper").rename(layer)
    shutil.rmtree(building, ignore_errors=True)
    return layer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FleetHost:
    def __init__(self, name: str, directory: pathlib.Path, port: int, boots_systemd: bool = False):
        self.name = name
        # A host that boots systemd runs in a `systemd-nspawn -b` container (its own PID 1, journal and units, the
        # machine's network); the others are chroots where sshd is the only service.
        self.boots_systemd = boots_systemd
        self.directory = directory
        self.root = directory / "root"
        self.port = port
        self.address = "127.0.0.1"
        self.user = USER
        self.process = None
        self.mounts = []
        self.reboots = []
        self.rebooting = threading.Lock()

    @property
    def boot_id(self) -> str:
        return (self.directory / "boot_id").read_text().strip()

    def reboot(self, requested_only: bool = False) -> None:
        """What a reboot does to this host: all its processes end, /run is cleared, and it comes back with a new boot id."""
        with self.rebooting:
            if requested_only and not (self.root / "run/fleet-reboot-requested").exists():
                return  # another thread already carried this request out
            down = time.monotonic()
            time.sleep(0.5)  # `shutdown -r` returns to its caller before the machine goes down
            self.kill_all()
            self.process = None
            for name in ("fleet-reboot-requested", "reboot-required", "reboot-required.pkgs"):
                (self.root / "run" / name).unlink(missing_ok=True)
            (self.directory / "boot_id").write_text(str(uuid.uuid4()) + "\n")
            time.sleep(BOOT_SECONDS)
            self.start()
            self.reboots.append((down, time.monotonic()))

    def kill_all(self) -> None:
        """SIGKILL every process whose root directory is this host's tree (sshd, sessions, anything they started)."""
        root = str(self.root)
        for _ in range(20):
            found = False
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    if os.readlink(f"/proc/{entry}/root") == root:
                        found = True
                        os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    continue
            if self.process:
                try:
                    self.process.wait(timeout=0)
                except subprocess.TimeoutExpired:
                    pass
            if not found:
                return
            time.sleep(0.1)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside this host's tree (as root, without SSH): for setting up and checking results. On a
        booted systemd host it runs in the container's namespaces, so systemctl talks to the host's own systemd."""
        leader = self.leader() if self.boots_systemd else None
        prefix = ["nsenter", "-t", str(leader), "-m", "-u", "-i", "-p", "--"] if leader else ["chroot", str(self.root)]
        return subprocess.run([*prefix, *argv], check=check, capture_output=True, text=True)

    def leader(self) -> int | None:
        """The PID of a booted host's init (systemd-nspawn's child), or None when it is not running."""
        if not self.process or self.process.poll() is not None:
            return None
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = pathlib.Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                return int(entry)
        return None

    def host_key_fingerprint(self, kind: str = "ed25519") -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-f", str(self.root / f"etc/ssh/ssh_host_{kind}_key.pub")],
                             check=True, capture_output=True, text=True).stdout
        return out.split()[1]

    def replace_host_keys(self) -> None:
        """Make new host keys and restart sshd: what an attacker's machine at this address would present."""
        self.stop()
        for key in (self.root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        self.run("ssh-keygen", "-A")
        self.start()

    def start(self) -> None:
        if self.boots_systemd:
            # --register=no and --keep-unit: no machined or systemd on this machine to register the container with.
            self.process = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit", "--console=passive",
                 f"--machine={self.name}", f"--directory={self.root}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.directory / "nspawn.log", "ab"))
        else:
            self._start_sshd()
        deadline = time.monotonic() + (60 if self.boots_systemd else 15)
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    if connection.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                if self.process and self.process.poll() is not None:
                    break
                time.sleep(0.1)
        log = "nspawn.log" if self.boots_systemd else "sshd.log"
        raise RuntimeError(f"{self.name} did not start:\n" + (self.directory / log).read_text(errors="replace"))

    def _start_sshd(self) -> None:
        (self.root / "run/sshd").mkdir(parents=True, exist_ok=True)
        name = self.name.encode()

        def own_hostname():
            # In the child, before exec: a UTS namespace of its own, named after the host (no shell involved).
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWUTS) != 0 or libc.sethostname(name, len(name)) != 0:
                raise OSError(ctypes.get_errno(), "unshare/sethostname failed")

        self.process = subprocess.Popen(
            ["chroot", str(self.root), "/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"],
            stdout=subprocess.DEVNULL, stderr=open(self.directory / "sshd.log", "ab"), preexec_fn=own_hostname)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            # systemd-nspawn answers SIGTERM by powering the container down cleanly.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30 if self.boots_systemd else 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


class Fleet:
    """`count` hosts named fleet-1, fleet-2, ...; `authorized_key` is the public key allowed to log in as `steward`."""

    def __init__(self, count: int = 2, authorized_key: str = "", prefix: str = "fleet", package_manager: str = "apt",
                 boots_systemd: bool = False):
        self.count = count
        self.boots_systemd = boots_systemd
        self.package_manager = package_manager
        self.authorized_key = authorized_key.strip()
        self.prefix = prefix
        self.hosts = []
        self.directory = None
        self.stopping = threading.Event()
        self.watcher = None

    def __enter__(self) -> "Fleet":
        base = ensure_base()
        if self.boots_systemd:
            base = f"{ensure_systemd_layer(base)}:{base}"
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix="steward-fleet-"))
        try:
            for index in range(1, self.count + 1):
                self.hosts.append(self._make_host(base, f"{self.prefix}-{index}"))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.watcher = threading.Thread(target=self._watch_reboots, daemon=True)
        self.watcher.start()
        return self

    def _watch_reboots(self) -> None:
        """Carry out reboot requests, each host on its own thread, so overlapping requests would overlap here too."""
        while not self.stopping.wait(0.2):
            for host in self.hosts:
                if (host.root / "run/fleet-reboot-requested").exists() and not host.rebooting.locked():
                    threading.Thread(target=host.reboot, args=(True,), daemon=True).start()
                    time.sleep(0.05)

    def _make_host(self, base, name: str) -> FleetHost:
        host = FleetHost(name, self.directory / name, free_port(), self.boots_systemd)
        for part in ("upper", "work", "root"):
            (host.directory / part).mkdir(parents=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={base},upperdir={host.directory / 'upper'},workdir={host.directory / 'work'}", str(host.root)],
                       check=True)
        host.mounts.append(host.root)
        if not self.boots_systemd:
            self._chroot_specials(host)
        host.run("ssh-keygen", "-A")
        if self.package_manager == "dnf":
            self._present_as_rpm_host(host)
        (host.root / "etc/hostname").write_text(name + "\n")
        (host.root / "etc/hosts").write_text(f"127.0.0.1 localhost {name}\n")
        host.run("useradd", "--create-home", "--shell", "/bin/bash", USER)
        host.run("usermod", "-p", "*", USER)  # no password, but not locked: key login works
        ssh_dir = host.root / "home" / USER / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(self.authorized_key + "\n")
        host.run("chown", "-R", f"{USER}:{USER}", f"/home/{USER}/.ssh")
        (host.root / "etc/sudoers.d/steward").write_text(f"{USER} ALL=(ALL) NOPASSWD:ALL\n")
        os.chmod(host.root / "etc/sudoers.d/steward", 0o440)
        (host.root / "etc/ssh/sshd_config").write_text(
            f"Port {host.port}\nListenAddress 127.0.0.1\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin no\nPidFile /run/sshd.pid\nSubsystem sftp /usr/lib/openssh/sftp-server\n")
        host.start()
        return host

    @staticmethod
    def _chroot_specials(host: FleetHost) -> None:
        """A chroot host's /proc and /dev, its own boot id, and a shutdown that asks the fleet for a reboot."""
        for special in ("proc", "dev"):
            # /dev recursively, so /dev/pts comes along and sshd can give sessions a terminal (ssh -tt, as sudo wants).
            subprocess.run(["mount", "--rbind", f"/{special}", str(host.root / special)], check=True)
            subprocess.run(["mount", "--make-rprivate", str(host.root / special)], check=True)
            host.mounts.append(host.root / special)
        # A boot id of the host's own, over the kernel's (only inside this host's /proc bind mount).
        (host.directory / "boot_id").write_text(str(uuid.uuid4()) + "\n")
        boot_id = host.root / "proc/sys/kernel/random/boot_id"
        subprocess.run(["mount", "--bind", str(host.directory / "boot_id"), str(boot_id)], check=True)
        host.mounts.append(boot_id)
        (host.root / "usr/sbin/shutdown").write_text(SHUTDOWN)
        os.chmod(host.root / "usr/sbin/shutdown", 0o755)

    @staticmethod
    def _present_as_rpm_host(host: FleetHost) -> None:
        """A host managed with dnf and rpm. Only Debian's packages may be installed here, so the tree stays Debian's with
        Debian's dnf and rpm, an empty rpm database of its own, and an os-release of the RPM family, which is what
        Ansible reads to choose dnf. Package sources are the test's to add in /etc/yum.repos.d."""
        (host.root / "etc/os-release").unlink(missing_ok=True)
        (host.root / "etc/os-release").write_text(
            'NAME="Fedora Linux"\nVERSION="39 (Steward test fleet)"\nID=fedora\nVERSION_ID=39\n'
            'PRETTY_NAME="Fedora Linux 39 (Steward test fleet)"\n')
        (host.root / "etc/debian_version").unlink(missing_ok=True)
        for name in ("fedora-release", "redhat-release", "system-release"):
            (host.root / "etc" / name).write_text("Fedora release 39 (Thirty Nine)\n")
        (host.root / "etc/dnf/vars").mkdir(parents=True, exist_ok=True)
        (host.root / "etc/dnf/vars/releasever").write_text("39\n")
        host.run("rpm", "--initdb")

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        if self.watcher:
            self.watcher.join(timeout=5)
        for host in self.hosts:
            with host.rebooting:
                host.stop()
            for mount in reversed(host.mounts):
                subprocess.run(["umount", "--lazy", str(mount)], check=False)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.hosts = []


def _smoke(boots_systemd: bool = False) -> None:
    with tempfile.TemporaryDirectory() as temp:
        key = pathlib.Path(temp) / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        with Fleet(2, authorized_key=(key.with_suffix(".pub")).read_text(), boots_systemd=boots_systemd) as fleet:
            for host in fleet.hosts:
                out = subprocess.run(
                    ["ssh", "-i", str(key), "-p", str(host.port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "BatchMode=yes", f"{USER}@127.0.0.1", "hostname && sudo -n true && echo sudo-ok && (systemctl is-system-running || true)"],
                    capture_output=True, text=True, timeout=30)
                print(host.name, host.port, out.stdout.split(), host.host_key_fingerprint())


if __name__ == "__main__":
    if "--smoke" in sys.argv or "--smoke-systemd" in sys.argv:
        _smoke("--smoke-systemd" in sys.argv)
    else:
        print(__doc__)
