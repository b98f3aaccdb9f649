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
"""The simulator's report: tables a terminal shows whole, CSV tools read."""

import csv
import os

import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslotest import base
from rich import console as rich_console

from gpu_passthrough_filter.sim import fleet
from gpu_passthrough_filter.sim import metrics
from gpu_passthrough_filter.sim import nova_env
from gpu_passthrough_filter.sim import report
from gpu_passthrough_filter.sim import runner
from gpu_passthrough_filter.sim import workload

H100 = fleet.GPUModel('H100', '10de', '2330')


class ReportTest(base.BaseTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        sim_fleet = fleet.Fleet([fleet.SimHost(
            'host-%d' % i, vcpus=64, memory_mb=512 * 1024,
            gpus=fleet.build_gpus(8, H100)) for i in range(2)])
        arrivals = [workload.VMRequest('vm-%d' % i, 4, 16384, 1)
                    for i in range(3)] + [
            workload.VMRequest('big', 32, 65536, 8)]
        aliases = nova_env.AliasBook(sim_fleet.models(), [()])
        cls.summaries = []
        fixture = config_fixture.Config(cfg.CONF)
        fixture.setUp()
        try:
            for policy in runner.builtin_policies():
                result = runner.run_policy(sim_fleet, arrivals, policy,
                                           aliases)
                cls.summaries.append(metrics.summarize(
                    result, sim_fleet, workload.typical_gpu_shape(arrivals)))
        finally:
            fixture.cleanUp()

    def test_names_and_headers_are_never_cut(self):
        console = rich_console.Console(width=100, record=True,
                                       file=open(os.devnull, 'w'))
        console.print(report.summary_table(self.summaries, 'title'))
        text = console.export_text()
        for policy in ('nova-default', 'nova-pci-in-placement',
                       'gpu-passthrough', 'nova-packing'):
            self.assertIn(policy, text)
        for header in ('placed', 'GPUs given', '@130%', 'stranded',
                       'failed boots', 'ms/req', 'project ms'):
            self.assertIn(header, text)
        self.assertNotIn('…', text)

    def test_csv_has_one_row_per_run_and_every_field(self):
        directory = self.useFixture(fixtures.TempDir()).path
        summary_path, curve_path = report.write_csv(
            self.summaries, [0] * len(self.summaries), directory)
        with open(summary_path) as stream:
            rows = list(csv.DictReader(stream))
        self.assertEqual([s.policy for s in self.summaries],
                         [row['policy'] for row in rows])
        self.assertEqual(list(report.SUMMARY_FIELDS), list(rows[0]))
        self.assertEqual([str(s.failed_boots) for s in self.summaries],
                         [row['failed_boots'] for row in rows])
        with open(curve_path) as stream:
            self.assertTrue(list(csv.DictReader(stream)))
