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
"""The daemon's metrics endpoint, scraped over HTTP as Prometheus would."""

import functools
import re
import socket
from urllib import request as urlrequest

import fixtures
from oslotest import base
from prometheus_client import parser

from gpu_passthrough_filter.agent import cordon
from gpu_passthrough_filter.agent import daemon
from gpu_passthrough_filter.agent import metrics
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent import test_daemon

M = agent_fixtures.MACHINES
DOC_NAME = re.compile(r'``(gpupt_[a-z_]+)')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def scrape(port):
    with urlrequest.urlopen('http://127.0.0.1:%d/metrics' % port,
                            timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


class MetricsEndpointTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.inventory = agent_fixtures.machine_inventory(
            self, M.pcie_4gpu_dual_socket_l40s)
        self.gpus = [gpu.address for gpu in self.inventory.gpus]
        first = self.inventory.function(self.gpus[0])
        first.aer_correctable, first.cur_link_width = 7, 8
        # As the reader judges such a link (test_health reads it from
        # sysfs); here only what the endpoint shows of it matters.
        self.inventory.gpus[0].health = 'degraded'
        self.inventory.gpus[0].health_reasons = ['link at 16 GT/s x8']
        cordon.apply(self.inventory, {self.gpus[1]: cordon.Cordon(
            self.gpus[1], 'RMA 4711', 0.0)})
        conf_path = agent_fixtures.write_config(
            self.useFixture(fixtures.TempDir()).path,
            agent={'publishers': 'json', 'metrics_port': self.port,
                   'metrics_address': '127.0.0.1'})
        self.publisher = test_daemon.ScriptedPublisher(
            None, [test_daemon.unavailable()])
        self.agent = daemon.Daemon(
            functools.partial(daemon.build_conf, [conf_path]),
            discover_fn=lambda conf: self.inventory,
            publishers_fn=lambda conf: test_daemon.manager_of(
                json=self.publisher),
            wall_clock=lambda: 1764650000.0)
        self.agent.start()
        self.addCleanup(self.agent.metrics.close)

    def test_cycles_and_gpus(self):
        self.agent.cycle()
        samples = scrape(self.port)
        self.assertEqual(1, value(samples, 'gpupt_agent_cycles_total'))
        self.assertEqual(1, value(samples, 'gpupt_agent_cycle_errors_total',
                                  source='json'))
        self.assertEqual(0, value(
            samples, 'gpupt_agent_last_success_timestamp_seconds'))
        self.agent.cycle()
        samples = scrape(self.port)
        self.assertEqual(2, value(samples, 'gpupt_agent_cycles_total'))
        self.assertEqual(1764650000.0, value(
            samples, 'gpupt_agent_last_success_timestamp_seconds'))
        self.assertEqual(2, value(
            samples, 'gpupt_agent_cycle_duration_seconds_count'))

        first, second = self.gpus[:2]
        model = self.inventory.gpus[0].model
        self.assertEqual(1, value(
            samples, 'gpupt_gpu_state', address=second, model=model,
            state='cordoned', reason='cordoned: RMA 4711'))
        self.assertEqual(1, value(samples, 'gpupt_gpu_held', address=second))
        self.assertEqual(0, value(samples, 'gpupt_gpu_held', address=first))
        # Legacy mode (the default): the cordoned GPU is left out.
        self.assertEqual(0, value(samples, 'gpupt_gpu_offered',
                                  address=second))
        self.assertEqual(1, value(samples, 'gpupt_gpu_offered',
                                  address=first))
        self.assertEqual(1, value(samples, 'gpupt_gpu_isolation',
                                  address=first, isolation='isolated'))
        self.assertEqual(7, value(samples, 'gpupt_gpu_aer_errors_total',
                                  address=first, severity='correctable'))
        self.assertEqual(8, value(samples, 'gpupt_gpu_link_width',
                                  address=first, which='current'))
        # The narrower link makes the first GPU degraded, with its reason.
        state, = [key for key in samples if key[0] == 'gpupt_gpu_state'
                  and ('address', first) in key[1]]
        labels = dict(state[1])
        self.assertEqual('degraded', labels['state'])
        self.assertIn('link at', labels['reason'])

    def test_a_gone_gpu_leaves_no_series(self):
        self.agent.cycle()
        gone = self.inventory.gpus.pop()
        self.agent.cycle()
        samples = scrape(self.port)
        self.assertFalse([key for key in samples
                          if ('address', gone.address) in key[1]])
        self.assertTrue([key for key in samples
                         if ('address', self.gpus[0]) in key[1]])

    def test_every_name_is_documented(self):
        self.agent.cycle()
        served = {family.name for family in parser.
                  text_string_to_metric_families(self.agent.metrics.text())}
        documented = set(DOC_NAME.findall(metrics.__doc__))
        with open('doc/source/admin/agent-publishing.rst') as stream:
            guide = set(DOC_NAME.findall(stream.read()))
        # The parser names counters without their _total suffix.
        documented = {name[:-len('_total')] if name.endswith('_total')
                      else name for name in documented}
        self.assertEqual(served, documented)
        self.assertLessEqual(served, {
            name[:-len('_total')] if name.endswith('_total') else name
            for name in guide})


class NoPortNoServerTest(base.BaseTestCase):

    def test_default_is_off(self):
        conf = agent_fixtures.agent_conf(self)
        self.assertEqual(0, conf.agent.metrics_port)
