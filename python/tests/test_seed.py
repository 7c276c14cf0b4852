"""The founding document's snippet, unchanged but for the import, against the real cluster.

It names ``localhost:9092``; the test cluster's first node listens elsewhere, so a small TCP
relay takes ``localhost:9092`` for the duration (the brokers' metadata then names their own
addresses, as for any client).
"""

import json
import os
import socket
import subprocess
import sys
import threading
import uuid

from conftest import make_topic, read_back

SNIPPET = '''
import json
import sys
from kprod import KafkaProducer

weather_data = {"city": "seoul", "temp": 3.5, "run": sys.argv[1]}

producer = KafkaProducer(bootstrap_servers=['localhost:9092'],
                         value_serializer=lambda v: json.dumps(v).encode('utf-8'), acks='all')
producer.send('weather_realtime', key='seoul', value=weather_data)
producer.flush()
'''


class Relay:
    """localhost:9092 -> the first bootstrap server, one thread pair per connection."""

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 9092))
        self.server.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.server.close()


def test_the_seed_snippet_runs_unchanged_but_for_the_import(bootstrap, admin):
    make_topic(admin, name="weather_realtime")
    relay = Relay(bootstrap[0])
    try:
        run = uuid.uuid4().hex
        done = subprocess.run([sys.executable, "-c", SNIPPET, run], timeout=120,
                              capture_output=True, text=True, env=dict(os.environ))
        assert done.returncode == 0, done.stderr
    finally:
        relay.close()
    def ours(records):
        return [r for r in records if json.loads(r.value).get("run") == run]

    mine = ours(read_back(bootstrap, "weather_realtime", until=ours))
    assert len(mine) == 1
    assert mine[0].key == b"seoul"
    assert json.loads(mine[0].value) == {"city": "seoul", "temp": 3.5, "run": run}
