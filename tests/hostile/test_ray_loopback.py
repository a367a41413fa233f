"""The embedded Ray is Ophora's own and reachable only from this machine: address="local", every socket of its
process tree (GCS, raylet, workers, agents, metrics servers) listening on loopback."""

from __future__ import annotations

import ipaddress

import psutil


def _listening(root: psutil.Process) -> list[tuple[str, int, str]]:
    found = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [(c.laddr.ip, c.laddr.port, name) for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def test_embedded_ray_listens_on_loopback_only(ray_local):
    @ray_local.remote
    def touch() -> int:  # a worker process starts and opens its own server
        return 1

    assert ray_local.get(touch.remote()) == 1
    sockets = _listening(psutil.Process())
    assert len(sockets) >= 4, sockets  # gcs, raylet, the driver's core worker, agents: the check saw them
    assert [s for s in sockets if not _loopback(s[0])] == []


def test_connect_starts_its_own_ray_instead_of_joining_one(monkeypatch):
    """ray.init() without an address attaches to any Ray already running on the machine."""
    import ray

    from ophora import ray_session

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append((kw, dict(ray_session.os.environ))))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_session.connect()
    ((kwargs, env),) = calls
    assert kwargs["address"] == "local" and kwargs["_node_ip_address"] == "127.0.0.1"
    assert env.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"  # seen by the processes ray.init starts ...
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in ray_session.os.environ  # ... and not left behind
