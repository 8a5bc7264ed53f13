"""A secured endpoint in front of the test node, as production has one: Debian's nginx
terminating TLS (certificates made here, at test time, by a CA of our own) with HTTP basic
auth, proxying to the node at ``/`` and under ``/os/``; plus the broken endpoints an
operator meets: an expired certificate, a certificate for another host name, a proxy with
a 1 MB body limit, a proxy whose upstream is down (an HTML 502 page).

nginx runs in the foreground of a subprocess with its own prefix directory and is stopped
by its PID."""

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time

from helpers import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
USER = "operator"
#: A password with the characters that break URL parsing (``#``, ``/``, ``?``, ``@``).
PASSWORD = "p#ss/w?rd@42"


def _write_pem(path, data):
    path.write_bytes(data)
    return str(path)


class Certificates:
    """A CA of the test's own and the server certificates it signs."""

    def __init__(self, directory):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ec, self._oid = x509, hashes, ec, NameOID
        self._serialization = serialization
        self.dir = directory
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "community-stats test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_pem = _write_pem(directory / "ca.pem", self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def server(self, stem, names=("localhost",), ips=("127.0.0.1",), expired=False):
        """A key and certificate for ``names``/``ips`` (PEM paths); ``expired``: valid only
        in the past."""
        x509, ser = self._x509, self._serialization
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = (
            (now - datetime.timedelta(days=60), now - datetime.timedelta(days=30))
            if expired
            else (
                now - datetime.timedelta(days=1),
                now + datetime.timedelta(days=30),
            )
        )
        san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(self._oid.COMMON_NAME, names[0])]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .sign(self.ca_key, self._hashes.SHA256())
        )
        key_pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
        return (
            _write_pem(self.dir / f"{stem}.crt", cert.public_bytes(ser.Encoding.PEM)),
            _write_pem(self.dir / f"{stem}.key", key_pem),
        )


CONFIG = """
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_read_timeout 300s;
    upstream node {{ server {upstream}; keepalive 16; }}
    upstream dead {{ server 127.0.0.1:{dead_port}; }}

    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        auth_basic "OpenSearch";
        auth_basic_user_file {dir}/htpasswd;
        client_max_body_size 200m;
        location / {{ proxy_pass http://node; }}
        location /os/ {{ proxy_pass http://node/; }}
        location /small/ {{ client_max_body_size 1m; proxy_pass http://node/; }}
        location /down/ {{ proxy_pass http://dead/; }}
    }}
    server {{
        listen 127.0.0.1:{expired_port} ssl;
        ssl_certificate {expired_crt};
        ssl_certificate_key {expired_key};
        location / {{ proxy_pass http://node; }}
    }}
    server {{
        listen 127.0.0.1:{wrong_name_port} ssl;
        ssl_certificate {wrong_crt};
        ssl_certificate_key {wrong_key};
        location / {{ proxy_pass http://node; }}
    }}
}}
"""


class SecuredEndpoint:
    """nginx in front of the node at ``upstream`` (``host:port``): ``url`` (TLS + basic
    auth), ``expired_url``, ``wrong_name_url``; ``ca_pem`` is the CA to trust."""

    def __init__(self, directory, upstream):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        certs = Certificates(directory)
        self.ca_pem = certs.ca_pem
        crt, key = certs.server("server")
        expired_crt, expired_key = certs.server("expired", expired=True)
        wrong_crt, wrong_key = certs.server("wrong-name", names=("other.example",), ips=())
        self.port, self.expired_port, self.wrong_name_port = free_port(), free_port(), free_port()
        (directory / "htpasswd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (directory / sub).mkdir(exist_ok=True)
        (directory / "nginx.conf").write_text(
            CONFIG.format(
                user="user root;" if os.geteuid() == 0 else "",
                dir=directory,
                upstream=upstream,
                dead_port=free_port(),
                port=self.port,
                crt=crt,
                key=key,
                expired_port=self.expired_port,
                expired_crt=expired_crt,
                expired_key=expired_key,
                wrong_name_port=self.wrong_name_port,
                wrong_crt=wrong_crt,
                wrong_key=wrong_key,
            )
        )
        self.log = open(directory / "nginx.out", "w")
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(directory / 'error.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("nginx did not start listening")

    def url(self, path="", credentials=True, host="127.0.0.1", port=None):
        """``https://[user:password@]host:port/path`` (the password URL-encoded)."""
        from urllib.parse import quote

        auth = f"{USER}:{quote(PASSWORD, safe='')}@" if credentials else ""
        return f"https://{auth}{host}:{port or self.port}/{path.strip('/')}".rstrip("/")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.log.close()
