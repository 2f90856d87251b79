"""Run gcloud-tasks-emulator bound to 127.0.0.1 (it binds [::] on its own).

Runs under the emulator's own venv (.venv-tasks): its pins clash with the platform's.
Usage: .venv-tasks/bin/python infra/tasks_emulator.py start -p PORT -r MAX_RETRIES
"""

import sys

import grpc
from gcloud_tasks_emulator import __main__ as emulator_main
from gcloud_tasks_emulator import server as emulator_server

_real_server = grpc.server


class _LoopbackServer:
    def __init__(self, inner):
        self._inner = inner

    def add_insecure_port(self, address):
        return self._inner.add_insecure_port(address.replace("[::]", "127.0.0.1"))

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _loopback_server(*args, **kwargs):
    return _LoopbackServer(_real_server(*args, **kwargs))


emulator_server.grpc.server = _loopback_server

if __name__ == "__main__":
    sys.argv[0] = "gcloud-tasks-emulator"
    emulator_main.main()
