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
"""``gpu-passthrough-cloud`` against real Nova and Placement: what
``capacity`` says is what the scheduler then does.

Real nova (API, conductor, scheduler with the project's recommended
pipeline, computes on the fake libvirt driver) with PCI in Placement; the
commands read that Placement and nova's API through openstacksdk.
"""

import io
import json

import fixtures
from prometheus_client import parser

from gpu_passthrough_filter.agent import client as client_mod
from gpu_passthrough_filter.agent import holds
from gpu_passthrough_filter.cmd import cloud
from tests import fake_gpus
from tests.functional import sdk_cloud
from tests.functional import test_placement_scale

ALIAS = ['h100=%s:%s' % (fake_gpus.H100.vendor_id, fake_gpus.H100.product_id)]


class CloudCommandsTest(test_placement_scale.RecommendedPlacementTestBase):

    def setUp(self):
        super().setUp()
        self.start_gpu_compute('hgx', fake_gpus.eight_gpu_host())
        # Four GPUs, but RAM for one 2 GiB guest: 4096 MiB less nova's
        # reserved 512. (Nova's fake libvirt hands HostInfo.kB_mem, which
        # start_gpu_compute sets to memory_mb * 1024, to the resource
        # tracker as MiB: memory_mb=4 makes 4096 MiB.)
        self.start_gpu_compute('ram-poor', fake_gpus.eight_gpu_host()[:4],
                               numa_nodes=1, memory_mb=4)
        self.start_gpu_compute('no-gpu', [])
        self.conn = sdk_cloud.connect(self.api_fixture,
                                      self.placement_fixture)

    def command(self, *argv, output='json'):
        out = self.useFixture(fixtures.MonkeyPatch(
            'sys.stdout', io.StringIO())).new_value
        status = cloud.main(['--format', output, '--alias', ALIAS[0]]
                            + list(argv), conn=self.conn)
        self.assertEqual(0, status)
        return json.loads(out.getvalue()) if output == 'json' else (
            out.getvalue())

    def test_capacity_is_what_the_scheduler_then_places(self):
        self.hold(self.gpu_provider_uuids('hgx')['0000:18:00.0'])
        flavor = self.create_gpu_flavor('h100:2', vcpu=2, memory_mb=2048,
                                        name='gpu2')
        report = self.command('capacity', '--flavor', 'gpu2')
        per_host = {row['host']: row['guests'] for row in report['hosts']}
        # hgx: 7 GPUs left of 8 (one held): 3 pairs; ram-poor: RAM for one.
        self.assertEqual({'hgx': 3, 'ram-poor': 1, 'no-gpu': 0}, per_host)
        blockers = {row['host']: row['blocker'] for row in report['hosts']}
        self.assertIn('MEMORY_MB', blockers['ram-poor'])
        self.assertIn('1 free', blockers['hgx'])
        self.assertIn('GPU', blockers['no-gpu'])

        # As many as it says, then NoValidHost.
        hosts = [self.server_host(self.boot_server(flavor))
                 for _ in range(report['total'])]
        self.boot_server_expecting_no_valid_host(flavor)
        self.assertEqual({h: n for h, n in per_host.items() if n},
                         {h: hosts.count(h) for h in set(hosts)})
        # Full now, and the commands agree.
        self.assertEqual(0, self.command('capacity', '--flavor',
                                         'gpu2')['total'])
        table = self.command('capacity', '--flavor', 'gpu2', output='table')
        self.assertIn('Capacity for flavor gpu2: 0 more', table)
        self.assertIn('What stops the next one', table)

    def test_explain_says_why_with_numbers(self):
        self.create_gpu_flavor('h100:4', vcpu=6, memory_mb=2048, name='gpu4',
                               extra_specs={'gpu_passthrough:locality':
                                            'switch'})
        report = self.command('explain', '--flavor', 'gpu4')
        rows = {row['host']: row for row in report['hosts']}
        self.assertFalse(rows['hgx']['fits'])
        checks = dict(rows['hgx']['checks'])
        self.assertRegex(checks['VCPU'], r'^ok: \d+ free, needs 6$')
        self.assertEqual('8 free of 8 (0 in use or held)', checks['GPUs'])
        # Two GPUs per switch on this host: no four under one switch.
        self.assertIn('switch', checks['GPU set'])
        self.assertFalse(rows['ram-poor']['fits'])
        ram = dict(rows['ram-poor']['checks'])['MEMORY_MB']
        self.assertRegex(ram, r'^ok: \d+ free, needs 2048$')
        self.assertIn('switch', dict(rows['ram-poor']['checks'])['GPU set'])
        table = self.command('explain', '--flavor', 'gpu4', '--host', 'hgx',
                             output='table')
        self.assertIn('Flavor gpu4, host by host', table)
        self.assertNotIn('ram-poor', table)
        # The scheduler agrees: no host for it.
        self.boot_server_expecting_no_valid_host(self._get_flavor_id('gpu4'))

    def test_fleet_summary(self):
        self.hold(self.gpu_provider_uuids('hgx')['0000:18:00.0'])
        report = self.command('fleet')
        self.assertEqual(11, report['free_gpus'])
        self.assertEqual(1, report['held_gpus'])
        rows = {row['host']: row for row in report['hosts']}
        self.assertEqual({'1': 7, '2': 3, '4': 1, '8': 0},
                         rows['hgx']['blocks'])
        self.assertEqual({'1': 4, '2': 2, '4': 1, '8': 0},
                         rows['ram-poor']['blocks'])
        self.assertEqual(0, report['blocks']['8'])
        self.assertEqual(1.0, report['fragmentation_index'])
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in parser.text_string_to_metric_families(
                self.command('fleet', output='prometheus'))
            for sample in family.samples}
        self.assertEqual(11, samples[('gpupt_fleet_free_gpus', ())])
        self.assertEqual(1.0, samples[('gpupt_fleet_fragmentation_index',
                                       ())])
        # One free 4-GPU block on each host.
        self.assertEqual(2, samples[('gpupt_fleet_free_blocks',
                                     (('size', '4'),))])
        self.assertEqual(7, samples[('gpupt_host_free_gpus',
                                     (('host', 'hgx'),))])
        table = self.command('fleet', output='table')
        self.assertIn('11 free GPUs, 1 held, 0 stranded', table)

    def hold(self, uuid):
        client = client_mod.PlacementClient(self.conn)
        self.assertTrue(holds.set_reserved(client, uuid, True))

    def _get_flavor_id(self, name):
        return self.conn.compute.find_flavor(name, ignore_missing=False).id
