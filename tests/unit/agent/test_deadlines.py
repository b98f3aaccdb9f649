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
"""A Placement that trickles its answer cannot hold the agent.

A real HTTP server on 127.0.0.1 answers every request one byte every 0.2
s, so no read ever times out; the request and the cycle are bounded as a
whole. Also: a refused connection is said once, not three times.
"""

import http.server
import socket
import threading
import time

from oslotest import base

from gpu_passthrough_filter.agent import client
from gpu_passthrough_filter.agent import daemon
from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.agent import placement
from tests.unit.agent import fixtures as agent_fixtures


class _Trickle(http.server.BaseHTTPRequestHandler):

    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', '1000')
        self.end_headers()
        try:
            for _ in range(1000):
                self.wfile.write(b' ')
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass  # the client gave up, as it should

    def log_message(self, *args):
        pass


class DeadlineTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Trickle)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        self.endpoint = 'http://127.0.0.1:%d/placement' % server.server_port
        self.inventory = agent_fixtures.machine_inventory(
            self, agent_fixtures.MACHINES.dgx_a100_like)

    def conf(self, timeout, cycle=120):
        return agent_fixtures.agent_conf(
            self, None, agent={'cycle_timeout': cycle},
            placement={'auth_type': 'admin_token', 'token': 'admin',
                       'endpoint': self.endpoint, 'timeout': timeout})

    def test_a_trickled_answer_is_cut_at_the_request_timeout(self):
        publisher = placement.PlacementPublisher(self.conf(timeout=1))
        started = time.monotonic()
        error = self.assertRaises(exception.PlacementUnavailable,
                                  publisher.publish, self.inventory)
        self.assertLess(time.monotonic() - started, 5)
        self.assertIn('no complete answer within 1.0 s', str(error))
        self.assertTrue(error.transient)

    def test_the_cycle_is_bounded_as_a_whole(self):
        conf = self.conf(timeout=30, cycle=1)
        manager = daemon.load_publishers(conf)
        started = time.monotonic()
        report = daemon.run_cycle(conf, manager,
                                  discover_fn=lambda conf: self.inventory)
        self.assertLess(time.monotonic() - started, 5)
        self.assertFalse(report.ok)
        self.assertIn('within 1.0 s', str(report.errors['placement']))

    def test_out_of_cycle_time_before_sending(self):
        with client.cycle_deadline(0):
            self.assertEqual(0, max(0, client._time_left(30)))


class RefusedTest(base.BaseTestCase):

    def test_a_refused_connection_is_said_once(self):
        with socket.socket() as free:
            free.bind(('127.0.0.1', 0))
            port = free.getsockname()[1]
        conf = agent_fixtures.agent_conf(self, None, placement={
            'auth_type': 'admin_token', 'token': 'admin', 'timeout': 2,
            'endpoint': 'http://127.0.0.1:%d/placement' % port})
        error = self.assertRaises(
            exception.PlacementUnavailable,
            placement.PlacementPublisher(conf).publish,
            agent_fixtures.machine_inventory(
                self, agent_fixtures.MACHINES.dgx_a100_like))
        self.assertEqual(1, str(error).count('127.0.0.1:%d' % port),
                         str(error))
