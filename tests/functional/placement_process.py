# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.
"""Placement as a real process on 127.0.0.1, for the agent's tests.

``placement.wsgi.api:application`` under gunicorn (one worker), with
``[api] auth_strategy = noauth2`` (token ``admin``) and an SQLite database
synced by ``placement-manage db sync``. The fixture can stop and start the
server on the same port and database (a Placement outage), and counts the
requests of its access log (write calls in a steady state).
"""

import json
import os
import socket
import subprocess
import sys
import time

import fixtures
import requests

#: Seconds to wait for gunicorn to answer after a start.
START_TIMEOUT = 60


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class PlacementProcess(fixtures.Fixture):
    """A real Placement service; ``endpoint`` is its URL."""

    def _setUp(self):
        self.directory = self.useFixture(fixtures.TempDir()).path
        self.port = free_port()
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        self.access_log = os.path.join(self.directory, 'access.log')
        self.config = os.path.join(self.directory, 'placement.conf')
        with open(self.config, 'w') as stream:
            stream.write('[api]\nauth_strategy = noauth2\n'
                         '[placement_database]\nconnection = '
                         'sqlite:///%s/placement.db\n' % self.directory)
        subprocess.run([os.path.join(os.path.dirname(sys.executable),
                                     'placement-manage'),
                        '--config-file', self.config, 'db', 'sync'],
                       check=True, capture_output=True)
        self.process = None
        self.start()
        self.addCleanup(self.stop)

    def start(self):
        """Start gunicorn and wait until Placement answers."""
        env = dict(os.environ, OS_PLACEMENT_CONFIG_DIR=self.directory)
        log = open(os.path.join(self.directory, 'gunicorn.log'), 'ab')
        self.addCleanup(log.close)
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'gunicorn', '--workers', '1',
             '--bind', '127.0.0.1:%d' % self.port,
             '--access-logfile', self.access_log,
             'placement.wsgi.api:application'],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if requests.get(self.endpoint + '/', timeout=10).ok:
                    return
            except requests.RequestException:  # not listening or loading
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError('placement did not start; see %s/gunicorn.log'
                           % self.directory)

    def stop(self):
        """Kill the server (SIGKILL: an outage, not a clean shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self.process = None

    def call(self, method, path, body=None):
        """One request as an admin; returns the ``requests`` response."""
        return requests.request(
            method, self.endpoint + path, timeout=30,
            data=None if body is None else json.dumps(body),
            headers={'X-Auth-Token': 'admin',
                     'Content-Type': 'application/json',
                     'OpenStack-API-Version': 'placement 1.23'})

    def create_provider(self, name):
        response = self.call('POST', '/resource_providers', {'name': name})
        response.raise_for_status()
        return response.json()['uuid']

    def traits(self, uuid):
        body = self.call('GET', '/resource_providers/%s/traits'
                         % uuid).json()
        return set(body['traits']), body['resource_provider_generation']

    def add_trait(self, uuid, name):
        """Add one trait with a generation-checked write, retrying 409."""
        self.call('PUT', '/traits/%s' % name)
        while True:
            current, generation = self.traits(uuid)
            response = self.call(
                'PUT', '/resource_providers/%s/traits' % uuid,
                {'traits': sorted(current | {name}),
                 'resource_provider_generation': generation})
            if response.status_code != 409:
                response.raise_for_status()
                return

    def set_traits(self, uuid, names):
        for name in names:
            self.call('PUT', '/traits/%s' % name)
        _, generation = self.traits(uuid)
        self.call('PUT', '/resource_providers/%s/traits' % uuid,
                  {'traits': sorted(names),
                   'resource_provider_generation': generation}
                  ).raise_for_status()

    def requests_since(self, mark):
        """``(method, path)`` of the access-log lines after line ``mark``."""
        return [tuple(line.split('"')[1].split()[:2])
                for line in self.access_lines()[mark:]]

    def access_lines(self):
        try:
            with open(self.access_log) as stream:
                return stream.read().splitlines()
        except FileNotFoundError:
            return []
