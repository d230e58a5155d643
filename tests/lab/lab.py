"""The lab: real hosts in network namespaces, real Debian daemons, real failures.

    client 198.51.100.15 --- 198.51.100.1 router 203.0.113.1 --- 203.0.113.2 dns (unbound)
     (resolv.conf from /etc/netns)           |                    203.0.113.4 dns (dnsmasq)
                                        198.18.53.1 --- 198.18.53.2 auth (nsd: yummyrecipesforme.com)

The addresses mirror the seed's incident (the client 198.51.100.15, the DNS server 203.0.113.2). No
namespace has a link to the machine's own network: nothing sent here can leave the lab. Every process is
started by the lab and killed by its pid; every namespace and /etc/netns entry is removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

ZONE = "yummyrecipesforme.com"
WEB_ADDRESS = "203.0.113.22"
CLIENT, ROUTER_CLIENT_SIDE = "198.51.100.15", "198.51.100.1"
ROUTER_SERVER_SIDE, RESOLVER, RESOLVER2 = "203.0.113.1", "203.0.113.2", "203.0.113.4"
ROUTER_AUTH_SIDE, AUTH = "198.18.53.1", "198.18.53.2"
SIGNED_AUTH, SIGNED_ZONE = "198.18.53.3", "signed.lab"
ROGUE, FORGED = "203.0.113.5", "198.51.100.66"
SLOW = "203.0.113.6"
# A resolver that forwards honestly to the zone's server, except that it makes up an address for one name the
# zone does not have: NXDOMAIN redirection, as some ISPs' and hijacked resolvers do.
REDIRECTOR, REDIRECTED = "203.0.113.7", "missing-page." + "yummyrecipesforme.com"
# A resolver whose UDP answers are rewritten on the way (TCP left alone): a transparent proxy, an interceptor.
INTERCEPTED = "203.0.113.8"
EXTRA_RESOLVERS = tuple(f"203.0.113.{30 + i}" for i in range(10))
BIG_TXT = "big." + ZONE

REQUIRED_TOOLS = (
    "ip",
    "nft",
    "iptables-legacy-restore",
    "unbound",
    "nsd",
    "knotd",
    "dnsmasq",
    "dig",
    "openssl",
    "tcpdump",
    "dnsperf",
)


def missing_tools() -> list[str]:
    return [t for t in REQUIRED_TOOLS if shutil.which(t) is None]


def sh(
    *args: str, check: bool = True, timeout: float = 20, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=timeout, input=input)


@dataclass
class Daemon:
    name: str
    argv: list[str]
    netns: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *self.argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # `ip netns exec` execs the daemon: this pid is the daemon itself.
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Lab:
    prefix: str = field(default_factory=lambda: f"rbk{secrets.token_hex(2)}")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="runbook-lab-")))
    daemons: dict[str, Daemon] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)

    # -- names ---------------------------------------------------------------------------------
    @property
    def client(self) -> str:
        return f"{self.prefix}-client"

    @property
    def router(self) -> str:
        return f"{self.prefix}-router"

    @property
    def dns(self) -> str:
        return f"{self.prefix}-dns"

    @property
    def auth(self) -> str:
        return f"{self.prefix}-auth"

    def ns(
        self, netns: str, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", netns, *args, check=check, input=input)

    # -- building ------------------------------------------------------------------------------
    def up(self) -> Lab:
        try:
            self._network()
            self._hostfiles(f"nameserver {RESOLVER}\n")
            self._auth_server()
            self._signed_auth_server()
            self._resolvers()
            self._web_server()
        except BaseException:
            self.down()
            raise
        return self

    def _network(self) -> None:
        for netns in (self.client, self.router, self.dns, self.auth):
            sh("ip", "netns", "add", netns)
            self.created.append(netns)
            self.ns(netns, "ip", "link", "set", "lo", "up")
        links = [
            (self.client, "c0", f"{CLIENT}/24", self.router, "r0", f"{ROUTER_CLIENT_SIDE}/24"),
            (self.dns, "d0", f"{RESOLVER}/24", self.router, "r1", f"{ROUTER_SERVER_SIDE}/24"),
            (self.auth, "a0", f"{AUTH}/24", self.router, "r2", f"{ROUTER_AUTH_SIDE}/24"),
        ]
        for ns_a, if_a, addr_a, ns_b, if_b, addr_b in links:
            sh("ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
            for netns, ifname, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
                self.ns(netns, "ip", "addr", "add", addr, "dev", ifname)
                self.ns(netns, "ip", "link", "set", ifname, "up")
        for extra in (RESOLVER2, ROGUE, SLOW, REDIRECTOR, INTERCEPTED, WEB_ADDRESS, *EXTRA_RESOLVERS):
            self.ns(self.dns, "ip", "addr", "add", f"{extra}/24", "dev", "d0")
        self.ns(self.auth, "ip", "addr", "add", f"{SIGNED_AUTH}/24", "dev", "a0")
        self.ns(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # Linux rate-limits ICMP errors per destination (about one a second after a short burst). Tests
        # and benchmarks run the same probe many times a second; with the limit on, a later run would
        # see silence where an earlier one saw "port unreachable". Off on the lab's own hosts only.
        for netns in (self.router, self.dns, self.auth):
            self.ns(netns, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
        for netns, gateway in (
            (self.client, ROUTER_CLIENT_SIDE),
            (self.dns, ROUTER_SERVER_SIDE),
            (self.auth, ROUTER_AUTH_SIDE),
        ):
            self.ns(netns, "ip", "route", "add", "default", "via", gateway)

    def _hostfiles(self, resolv_conf: str, hosts: str = "127.0.0.1 localhost\n") -> None:
        etc = Path("/etc/netns") / self.client
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(resolv_conf)
        (etc / "hosts").write_text(hosts)

    def _auth_server(self) -> None:
        d = self.workdir / "nsd"
        d.mkdir()
        (d / f"{ZONE}.zone").write_text(
            f"$ORIGIN {ZONE}.\n$TTL 300\n"
            "@ IN SOA ns1 hostmaster 2026112501 3600 600 86400 300\n"
            "@ IN NS ns1\n"
            f"ns1 IN A {AUTH}\n"
            f"@ IN A {WEB_ADDRESS}\n"
            f"www IN A {WEB_ADDRESS}\n" + "big IN TXT " + " ".join(f'"{chr(97 + i) * 200}"' for i in range(4)) + "\n"
            # Too big for a 512-byte UDP answer: a client without EDNS gets TC=1 and must use TCP.
        )
        (d / "nsd.conf").write_text(
            "server:\n"
            f'  ip-address: {AUTH}\n  port: 53\n  username: ""\n  chroot: ""\n'
            f'  zonesdir: "{d}"\n  database: ""\n  pidfile: "{d}/nsd.pid"\n'
            f'  xfrdfile: "{d}/xfrd.state"\n  zonelistfile: "{d}/zone.list"\n'
            f'  logfile: "{d}/nsd.log"\n  verbosity: 1\n  server-count: 1\n'
            f'remote-control:\n  control-enable: yes\n  control-interface: "{d}/nsd.ctl"\n'
            f"zone:\n  name: {ZONE}\n  zonefile: {ZONE}.zone\n"
        )
        self.daemons["nsd"] = Daemon("nsd", ["nsd", "-d", "-c", str(d / "nsd.conf")], self.auth, d / "stdout.log")
        self.start("nsd")

    def _signed_auth_server(self) -> None:
        """knot serving a zone it signs itself, for which the resolver holds a wrong trust anchor."""
        d = self.workdir / "knot"
        d.mkdir()
        (d / f"{SIGNED_ZONE}.zone").write_text(
            f"$ORIGIN {SIGNED_ZONE}.\n$TTL 300\n"
            "@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n"
            "@ IN NS ns1\n"
            f"ns1 IN A {SIGNED_AUTH}\n"
            f"www IN A {WEB_ADDRESS}\n"
        )
        (d / "knot.conf").write_text(
            f'server:\n  rundir: "{d}"\n  listen: {SIGNED_AUTH}@53\n'
            f'database:\n  storage: "{d}"\n'
            "log:\n  - target: stderr\n    any: warning\n"
            f'template:\n  - id: default\n    storage: "{d}"\n    file: "%s.zone"\n'
            f"zone:\n  - domain: {SIGNED_ZONE}\n    dnssec-signing: on\n"
        )
        self.daemons["knot"] = Daemon("knot", ["knotd", "-c", str(d / "knot.conf")], self.auth, d / "stdout.log")
        self.start("knot")

    def _web_server(self) -> None:
        d = self.workdir / "web"
        d.mkdir()
        sh(
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={ZONE}",
            "-keyout",
            str(d / "key.pem"),
            "-out",
            str(d / "cert.pem"),
        )
        root = str(Path(__file__).resolve().parents[2])
        self.daemons["web"] = Daemon(
            "web",
            [
                "env",
                f"PYTHONPATH={root}",
                sys.executable,
                "-m",
                "tests.lab.webserver",
                WEB_ADDRESS,
                str(d / "cert.pem"),
                str(d / "key.pem"),
            ],
            self.dns,
            d / "stdout.log",
        )
        self.start("web")

    def _resolvers(self) -> None:
        d = self.workdir / "unbound"
        d.mkdir()
        # DNS over TLS on 853 of the resolver, with a self-signed certificate naming its address.
        sh(
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-subj", f"/CN=dns.{ZONE}", "-addext", f"subjectAltName=IP:{RESOLVER}",
            "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
        )  # fmt: skip
        (d / "unbound.conf").write_text(
            "server:\n"
            + "".join(f"  interface: {a}\n" for a in (RESOLVER, *EXTRA_RESOLVERS))
            + f"  interface: {RESOLVER}@853\n"
            + f'  tls-port: 853\n  tls-service-key: "{d}/key.pem"\n  tls-service-pem: "{d}/cert.pem"\n'
            + "  port: 53\n  do-ip6: no\n"
            "  access-control: 0.0.0.0/0 allow\n"
            f'  chroot: ""\n  username: ""\n  directory: "{d}"\n  pidfile: "{d}/unbound.pid"\n'
            f'  use-syslog: no\n  logfile: "{d}/unbound.log"\n  verbosity: 1\n  do-daemonize: no\n'
            # Validating, with one trust anchor only: for the signed zone, and wrong (a DS no key matches).
            '  module-config: "validator iterator"\n  qname-minimisation: no\n  num-threads: 1\n'
            "  ede: yes\n  val-log-level: 2\n"
            f'  trust-anchor: "{SIGNED_ZONE}. DS 4242 13 2 {"ab" * 32}"\n'
            "  msg-cache-size: 1m\n  rrset-cache-size: 1m\n"
            # Only the lab's zones are resolved; every other name is refused, so nothing asks the root.
            '  local-zone: "." refuse\n'
            f'  local-zone: "{ZONE}." transparent\n'
            f'  local-zone: "{SIGNED_ZONE}." transparent\n'
            # The daemon's own view, for `runbook server`: its control channel, on a local socket.
            f'remote-control:\n  control-enable: yes\n  control-interface: "{d}/unbound.ctl"\n'
            f'stub-zone:\n  name: "{ZONE}."\n  stub-addr: {AUTH}\n'
            f'stub-zone:\n  name: "{SIGNED_ZONE}."\n  stub-addr: {SIGNED_AUTH}\n'
        )
        self.daemons["unbound"] = Daemon(
            "unbound", ["unbound", "-d", "-c", str(d / "unbound.conf")], self.dns, d / "stdout.log"
        )
        self.daemons["dnsmasq"] = Daemon(
            "dnsmasq",
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                f"--listen-address={RESOLVER2}",
                "--bind-interfaces",
                f"--server=/{ZONE}/{AUTH}",
                "--user=root",
                "--group=root",
                f"--pid-file={self.workdir}/dnsmasq.pid",
                "--log-facility=-",
                "--cache-size=0",
            ],
            self.dns,
            self.workdir / "dnsmasq.log",
        )
        self.daemons["rogue"] = Daemon(
            "rogue",
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                f"--listen-address={ROGUE}",
                "--bind-interfaces",
                f"--address=/{ZONE}/{FORGED}",
                "--user=root",
                "--group=root",
                f"--pid-file={self.workdir}/rogue.pid",
                "--log-facility=-",
            ],
            self.dns,
            self.workdir / "rogue.log",
        )
        self.daemons["redirector"] = Daemon(
            "redirector",
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                f"--listen-address={REDIRECTOR}",
                "--bind-interfaces",
                f"--server=/{ZONE}/{AUTH}",
                f"--address=/{REDIRECTED}/{FORGED}",
                "--user=root",
                "--group=root",
                f"--pid-file={self.workdir}/redirector.pid",
                "--log-facility=-",
                "--cache-size=0",
            ],
            self.dns,
            self.workdir / "redirector.log",
        )
        self.daemons["relay"] = Daemon(
            "relay",
            [
                "env",
                f"PYTHONPATH={Path(__file__).resolve().parents[2]}",
                sys.executable,
                "-m",
                "tests.lab.relay",
                SLOW,
                RESOLVER,
                "0.4",
            ],
            self.dns,
            self.workdir / "relay.log",
        )
        self.daemons["interceptor"] = Daemon(
            "interceptor",
            [
                "env",
                f"PYTHONPATH={Path(__file__).resolve().parents[2]}",
                sys.executable,
                "-m",
                "tests.lab.relay",
                INTERCEPTED,
                RESOLVER,
                "0",
                FORGED,
            ],
            self.dns,
            self.workdir / "interceptor.log",
        )
        self.start("unbound")
        self.start("dnsmasq")

    # -- daemons -------------------------------------------------------------------------------
    _WHERE: ClassVar[dict[str, tuple[str, str, str]]] = {
        "nsd": ("auth", AUTH, ZONE),
        "knot": ("auth", SIGNED_AUTH, f"www.{SIGNED_ZONE}"),
        "unbound": ("router", RESOLVER, ZONE),
        "dnsmasq": ("router", RESOLVER2, ZONE),
        "rogue": ("router", ROGUE, ZONE),
        "redirector": ("router", REDIRECTOR, ZONE),
        "interceptor": ("router", INTERCEPTED, ZONE),
        "relay": ("router", SLOW, ZONE),
    }

    def start(self, name: str) -> None:
        daemon = self.daemons[name]
        if not daemon.running:
            daemon.start()
        self.wait_answering(name)
        if name == "nsd" and "unbound" in self.daemons and self.daemons["unbound"].running:
            self.wait_resolver_recovered()

    def wait_resolver_recovered(self, timeout: float = 60) -> None:
        """Until the resolver reaches the zone's server again: unbound remembers a server that was down (its
        infra cache) and answers SERVFAIL for a while after it is back. The next test or benchmark scenario
        must start from a lab that is whole, not from the tail of the last outage."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            fresh = f"recovered-{secrets.token_hex(4)}.{ZONE}"
            out = self.ns(self.router, "dig", "+time=1", "+tries=1", f"@{RESOLVER}", fresh, "A", check=False)
            if "status: NXDOMAIN" in out.stdout:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the resolver still cannot reach the zone's server after {timeout} s")

    def stop(self, name: str) -> None:
        self.daemons[name].stop()

    def wait_answering_at(self, address: str, timeout: float = 15) -> None:
        """Until something answers DNS (any rcode) at ``address`` in the server's namespace."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ns(self.dns, "dig", "+time=1", "+tries=1", f"@{address}", ".", "SOA", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"nothing answers DNS at {address} after {timeout} s")

    def wait_answering(self, name: str, timeout: float = 15) -> None:
        """Until the daemon answers a query for the lab zone (asked from a namespace that reaches it)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if name == "web":
                out = self.ns(self.router, "bash", "-c", f"exec 3<>/dev/tcp/{WEB_ADDRESS}/443", check=False)
                if out.returncode == 0:
                    return
            else:
                role, address, qname = self._WHERE[name]
                netns = {"auth": self.auth, "router": self.router}[role]
                out = self.ns(
                    netns, "dig", "+short", "+cd", "+time=1", "+tries=1", f"@{address}", qname, "A", check=False
                )
                if WEB_ADDRESS in out.stdout or FORGED in out.stdout:
                    return
            if not self.daemons[name].running:
                raise RuntimeError(f"{name} exited: {self.daemons[name].log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{name} does not answer after {timeout} s: {self.daemons[name].log.read_text()[-2000:]}")

    # -- conditions ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def stopped(self, name: str) -> Iterator[None]:
        self.stop(name)
        try:
            yield
        finally:
            self.start(name)

    @contextlib.contextmanager
    def running(self, name: str) -> Iterator[None]:
        """A daemon that is off unless a test needs it (the rogue resolver, the slow relay)."""
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)

    def hosts(self, text: str) -> contextlib.AbstractContextManager[None]:
        return self._client_file("hosts", text)

    @contextlib.contextmanager
    def unbound_with(self, *lines: str) -> Iterator[None]:
        """unbound restarted with ``lines`` added to its ``server:`` clause; restarted as it was afterwards."""
        conf = self.workdir / "unbound" / "unbound.conf"
        good = conf.read_text()
        self.stop("unbound")
        conf.write_text(good.replace("server:\n", "server:\n" + "".join(f"  {line}\n" for line in lines), 1))
        try:
            self.start("unbound")
            yield
        finally:
            self.stop("unbound")
            conf.write_text(good)
            self.start("unbound")

    @contextlib.contextmanager
    def flooding(self, address: str, *, clients: int = 8) -> Iterator[None]:
        """Waves of dnsperf from the client's namespace at ``address`` for as long as the block runs: each wave
        sends 20,000 queries at once (its outstanding limit), names of the lab zone and random names under it,
        then gives up on the unanswered after half a second, and the next wave starts.

        dnsperf alone, once its first burst is out, sends only as fast as answers come back, and a daemon that
        keeps up then never overflows its buffer; the waves are what the bursts of a flood do to it."""
        data = self.workdir / "flood.txt"
        data.write_text("".join(f"{n}.{ZONE} A\n" for n in ("www", "big", *(secrets.token_hex(4) for _ in range(200)))))
        argv = ["dnsperf", "-s", address, "-d", str(data), "-c", str(clients), "-q", "20000", "-l", "0.5", "-t", "0.5"]
        stop = threading.Event()

        def waves() -> None:
            while not stop.is_set():
                self.ns(self.client, *argv, check=False)

        thread = threading.Thread(target=waves, daemon=True)
        thread.start()
        try:
            time.sleep(0.3)  # the first wave is out
            yield
        finally:
            stop.set()
            thread.join(20)

    @contextlib.contextmanager
    def starved(self, name: str) -> Iterator[None]:
        """The daemon short of CPU: reniced to 19 while a busy loop per CPU runs at nice 10, as a server's daemon
        is when something else takes its cores. What runs at the default priority (the test, `runbook server`,
        dnsperf) goes first."""
        proc = self.daemons[name].proc
        assert proc is not None
        sh("renice", "-n", "19", "-p", str(proc.pid))
        hogs = [
            subprocess.Popen(["nice", "-n", "10", sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 1)
        ]
        try:
            yield
        finally:
            for hog in hogs:
                os.kill(hog.pid, signal.SIGKILL)
                hog.wait()
            sh("renice", "-n", "0", "-p", str(proc.pid), check=False)

    @contextlib.contextmanager
    def paused(self, name: str) -> Iterator[None]:
        """A hung daemon: SIGSTOP. The kernel still completes TCP handshakes and queues UDP for it."""
        proc = self.daemons[name].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(proc.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def nft(self, netns: str, ruleset: str) -> Iterator[None]:
        """Apply an nftables ruleset (tables named ``rbk*``) in a namespace; delete them afterwards."""
        self.ns(netns, "nft", "-f", "-", input=ruleset)
        try:
            yield
        finally:
            tables = json.loads(self.ns(netns, "nft", "-j", "list", "tables").stdout)["nftables"]
            for t in tables:
                if "table" in t and t["table"]["name"].startswith("rbk"):
                    self.ns(netns, "nft", "delete", "table", t["table"]["family"], t["table"]["name"])

    @contextlib.contextmanager
    def iptables_legacy(self, netns: str, restore: str) -> Iterator[None]:
        """Rules in the legacy iptables backend (iptables-legacy-restore); flushed afterwards."""
        self.ns(netns, "iptables-legacy-restore", input=restore)
        try:
            yield
        finally:
            self.ns(
                netns,
                "iptables-legacy-restore",
                input="*filter\n:INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\nCOMMIT\n",
            )

    @contextlib.contextmanager
    def link_down(self, netns: str, ifname: str, gateway: str) -> Iterator[None]:
        self.ns(netns, "ip", "link", "set", ifname, "down")
        try:
            yield
        finally:
            self.ns(netns, "ip", "link", "set", ifname, "up")
            self.ns(netns, "ip", "route", "replace", "default", "via", gateway)

    def resolv_conf(self, text: str) -> contextlib.AbstractContextManager[None]:
        return self._client_file("resolv.conf", text)

    @contextlib.contextmanager
    def _client_file(self, name: str, text: str) -> Iterator[None]:
        """The client's /etc/netns file ``name`` holds ``text`` for the duration."""
        path = Path("/etc/netns") / self.client / name
        before = path.read_text()
        path.write_text(text)
        try:
            yield
        finally:
            path.write_text(before)

    # -- running the tool ----------------------------------------------------------------------
    def runbook(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``runbook ARGS`` in the client namespace, exactly as a user there would run it."""
        return sh(
            "ip", "netns", "exec", self.client, sys.executable, "-m", "runbook", *args, check=False, timeout=timeout
        )

    def shell(
        self, command: str, cwd: Path, timeout: float = 60, path: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A command line exactly as a user types it (``runbook ...``), in the client namespace; ``path`` is
        the PATH after the runbook's own directory (cron's is ``/usr/bin:/bin``)."""
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{path or os.environ.get('PATH', '')}"}
        return subprocess.run(
            ["ip", "netns", "exec", self.client, "bash", "-c", command],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, stdout: Any = subprocess.PIPE) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.client, sys.executable, "-m", "runbook", *args],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )

    def runbook_on_server(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``runbook ...`` run on the DNS server host (its namespace), as an administrator there would."""
        return subprocess.run(
            ["ip", "netns", "exec", self.dns, sys.executable, "-m", "runbook", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @contextlib.contextmanager
    def capturing(self, path: Path, interface: str = "c0", *, text: bool = False) -> Iterator[None]:
        """tcpdump in the client's namespace while the block runs: a pcap at ``path`` (``interface`` any:
        Linux cooked), or with ``text`` its own ``-n`` output, as a user would paste it."""
        # --immediate-mode: every packet is written as it comes (on "any", tcpdump's default buffering keeps the
        # last ones when it is stopped)
        args = ["ip", "netns", "exec", self.client, "tcpdump", "-Z", "root", "--immediate-mode", "-i", interface, "-U"]
        args += ["-s", "0"]
        if text:
            args += ["-n", "-l"]
        else:
            args += ["-w", str(path)]
        args += ["port", "53", "or", "icmp", "or", "icmp6"]
        out = path.open("w") if text else subprocess.DEVNULL
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            proc.stderr.readline()  # "listening on ...": tcpdump is up; is it writing yet?
            for _ in range(50):  # a ping to the router, until the capture shows it (a pcap header is 24 bytes)
                self.ns(self.client, "ping", "-c", "1", "-W", "1", ROUTER_CLIENT_SIDE, check=False)
                if path.exists() and path.stat().st_size > (0 if text else 24):
                    break
            yield
            time.sleep(0.3)  # the last answers and ICMP errors reach the capture
            # and a last ping: the capture's last packet marks how long it ran (a capture that ends with the
            # run's last packet cannot tell a SYN that went unanswered from one that was just sent)
            self.ns(self.client, "ping", "-c", "1", "-W", "1", ROUTER_CLIENT_SIDE, check=False)
            time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
            if text:
                out.close()  # type: ignore[union-attr]

    @contextlib.contextmanager
    def serving(self, listen: str, *args: str) -> Iterator[subprocess.Popen[str]]:
        """`runbook serve --listen LISTEN ARGS` in the client namespace, answering before the block runs."""
        proc = self.popen("serve", "--listen", listen, *args, stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    if self.http_get(f"http://{listen}/", 2)[0] == 200:
                        break
                except (subprocess.CalledProcessError, ValueError):
                    pass
                time.sleep(0.1)
            yield proc
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)

    def http_get(self, url: str, timeout: float = 10) -> tuple[int, str]:
        """GET a URL from inside the client namespace (where `runbook serve` and Prometheus listen)."""
        code = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))\n"
            "    print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n"
        )
        out = sh(
            "ip", "netns", "exec", self.client, sys.executable, "-c", code, url, str(timeout), timeout=timeout + 10
        ).stdout
        status, _, body = out.partition("\n")
        return int(status), body

    def diagnose(self, *args: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
        proc = self.runbook("diagnose", ZONE, "--format", "json", *args)
        try:
            doc = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise AssertionError(
                f"no JSON (exit {proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-2000:]}"
            ) from None
        return doc, proc

    # -- teardown ------------------------------------------------------------------------------
    def down(self) -> None:
        for daemon in self.daemons.values():
            with contextlib.suppress(Exception):
                daemon.stop()
        for netns in reversed(self.created):
            sh("ip", "netns", "delete", netns, check=False)
        self.created.clear()
        shutil.rmtree(Path("/etc/netns") / self.client, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
