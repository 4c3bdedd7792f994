"""Debian's nginx as a round-robin load balancer in front of several ``charter serve`` workers.

One non-daemon nginx process per test, with a generated configuration under the test's folder
(pid, logs and temp paths there too), listening on a free loopback port: round-robin per
request with no stickiness, HTTP/1.1 keep-alive to the upstreams, no response buffering (SSE)
and the client's ``Host`` passed through (the DNS-rebinding checks see it). ``.ci/run``
installs the package when ``/usr/sbin/nginx`` is missing.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

NGINX = Path("/usr/sbin/nginx")

CONFIG = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format upstreams '$request_method $upstream_addr';
    access_log {root}/access.log upstreams;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream charter {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://charter;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def nginx_or_skip() -> Path:
    """The nginx binary (skips the test when the Debian package is not installed)."""
    if not NGINX.is_file():
        pytest.skip("nginx is not installed (apt-get install nginx; .ci/run does it)")
    return NGINX


def upstream_ports(root: Path) -> list[int]:
    """Which upstream port served each request, in order (from the access log)."""
    ports = []
    for line in (root / "access.log").read_text().splitlines():
        address = line.rpartition(" ")[2]
        if address.startswith("127.0.0.1:") and address[10:].isdigit():
            ports.append(int(address[10:]))
    return ports


@contextmanager
def balancer(root: Path, port: int, upstreams: Sequence[int]) -> Iterator[str]:
    """Run nginx on ``127.0.0.1:port`` in front of ``upstreams``; yields its base URL."""
    binary = nginx_or_skip()
    root.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server 127.0.0.1:{upstream};" for upstream in upstreams)
    config = root / "nginx.conf"
    config.write_text(CONFIG.format(root=root, port=port, servers=servers))
    command = [str(binary), "-p", str(root), "-e", str(root / "error.log"), "-c", str(config)]
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def _wait_ready(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"nginx exited with {process.returncode}: {stderr}")
        try:
            httpx.get(url + "/.well-known/oauth-authorization-server", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("nginx did not start listening")
