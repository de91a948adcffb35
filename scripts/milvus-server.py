"""A real Milvus server for the tests: PyPI `milvus` (embedded standalone Milvus 2.3.5
with its own etcd), installed into .venv by scripts/test-servers.sh.

    .venv/bin/python scripts/milvus-server.py DATA_DIR PORT

Prints "ready" once the server answers on PORT, and stops it (and removes DATA_DIR, about
500 MB) when its parent process (the test run) goes away, so that no server outlives the
tests. The embedded server binds
fixed side ports (etcd's 2379 among them): one such server runs on a machine at a time,
so a second one waits up to 120 s for the first to go.
"""
import os
import shutil
import signal
import socket
import sys
import time

from milvus import default_server


def busy(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def bind_like_go(port):
    """The package's port probe, with SO_REUSEADDR as the Go server binds its own.

    The stock probe binds without it, so a port a killed server left connections on (in
    TIME_WAIT for a minute) reads as taken, and the server quietly starts on the next
    port: a restarted server would not be where its clients look for it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return sock
    except OSError:
        sock.close()
        return None


def main():
    data, port = sys.argv[1], int(sys.argv[2])
    # A terminated wrapper still stops its server (the finally below), which would
    # otherwise keep running and hold etcd's port.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parent = os.getppid()
    deadline = time.time() + 120
    while busy(2379) and time.time() < deadline:
        time.sleep(0.5)
    default_server.config.try_bind_port = bind_like_go
    default_server.set_base_dir(data)
    default_server.listen_port = port
    default_server.start()
    try:
        if default_server.listen_port != port:
            # The package moves to the next free port when the asked one is taken.
            sys.exit(f"port {port} is taken: Milvus started on {default_server.listen_port}")
        print("ready", flush=True)
        while os.getppid() == parent:
            time.sleep(0.5)
    finally:
        default_server.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
