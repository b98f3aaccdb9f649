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
"""Fleets and workloads of the simulator: layouts, files, errors."""

import os

import fixtures
from oslotest import base

from gpu_passthrough_filter.sim import fleet
from gpu_passthrough_filter.sim import workload
from gpu_passthrough_filter import tags


def _write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, 'w') as stream:
        stream.write(text)
    return path


class TestOpenbFleet(base.BaseTestCase):

    def test_whole_fleet_has_the_trace_counts(self):
        whole = fleet.load_openb()
        self.assertEqual(1213, len(whole.hosts))
        self.assertEqual(6212, whole.gpu_count)

    def test_eight_gpu_layout_two_numa_two_switches_two_gpus(self):
        gpus = fleet.build_gpus(8, fleet.OPENB_MODELS['G2'])
        self.assertEqual([0] * 4 + [1] * 4, [g.numa_node for g in gpus])
        switches = [g.switch for g in gpus]
        self.assertEqual(4, len(set(switches)))
        self.assertEqual(switches[0], switches[1])
        self.assertNotEqual(switches[1], switches[2])
        self.assertEqual(8, len({g.iommu_group for g in gpus}))
        self.assertTrue(all(g.isolation == tags.ISOLATED for g in gpus))

    def test_two_gpu_host_one_per_socket_without_switch(self):
        gpus = fleet.build_gpus(2, fleet.OPENB_MODELS['T4'])
        self.assertEqual([0, 1], [g.numa_node for g in gpus])
        self.assertEqual({tags.NO_SWITCH}, {g.switch for g in gpus})

    def test_shared_groups_pair_gpus_under_one_switch(self):
        gpus = fleet.build_gpus(8, fleet.OPENB_MODELS['G2'],
                                shared_groups=True)
        self.assertEqual(4, len({g.iommu_group for g in gpus}))
        self.assertEqual({tags.SHARED}, {g.isolation for g in gpus})
        self.assertEqual(gpus[0].iommu_group, gpus[1].iommu_group)
        self.assertEqual(gpus[0].switch, gpus[1].switch)

    def test_shared_group_fraction_one_makes_every_pair_shared(self):
        sample = fleet.load_openb(hosts=30, seed=3, shared_group_fraction=1)
        multi = [h for h in sample.hosts if h.gpu_count >= 4]
        self.assertTrue(multi)
        for host in multi:
            self.assertEqual({tags.SHARED},
                             {g.isolation for g in host.gpus})

    def test_sample_is_seeded(self):
        first = fleet.load_openb(hosts=20, seed=7)
        again = fleet.load_openb(hosts=20, seed=7)
        other = fleet.load_openb(hosts=20, seed=8)
        self.assertEqual([h.name for h in first.hosts],
                         [h.name for h in again.hosts])
        self.assertNotEqual([h.name for h in first.hosts],
                            [h.name for h in other.hosts])

    def test_cpu_nodes_come_from_the_all_node_list(self):
        everything = fleet.load_openb(cpu_nodes=True)
        self.assertEqual(1523, len(everything.hosts))
        self.assertEqual(6212, everything.gpu_count)

    def test_layout_option_is_checked(self):
        self.assertEqual(fleet.Layout(2, 4, 1),
                         fleet.parse_layouts('8=2x4x1')[8])
        error = self.assertRaises(fleet.FleetError, fleet.parse_layouts,
                                  '8=2x2x1')
        self.assertIn('places 4 GPUs, not 8', str(error))


class TestYamlFleet(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def test_hosts_counts_and_models(self):
        path = _write(self.dir, 'fleet.yaml', """
hosts:
  - name: hgx
    count: 2
    vcpus: 128
    memory_mb: 1048576
    gpus: {model: {name: H100, vendor_id: 10de, product_id: '2330'},
           count: 8}
  - name: cpu-only
    vcpus: 64
    memory_mb: 262144
""")
        loaded = fleet.load_yaml(path)
        self.assertEqual(['hgx-1', 'hgx-2', 'cpu-only'],
                         [h.name for h in loaded.hosts])
        self.assertEqual(16, loaded.gpu_count)
        self.assertEqual('10de:2330',
                         loaded.hosts[0].gpus[0].model.model_tag)

    def test_bad_value_names_line_and_host(self):
        path = _write(self.dir, 'bad.yaml', """hosts:
  - name: good
    vcpus: 8
    memory_mb: 1024
  - name: broken
    vcpus: many
    memory_mb: 1024
""")
        error = self.assertRaises(fleet.FleetError, fleet.load_yaml, path)
        self.assertIn('line 5', str(error))
        self.assertIn('host broken', str(error))
        self.assertIn('vcpus', str(error))

    def test_unknown_model_and_duplicates_are_refused(self):
        path = _write(self.dir, 'model.yaml', """hosts:
  - {name: a, vcpus: 8, memory_mb: 1024, gpus: {model: X9, count: 1}}
""")
        error = self.assertRaises(fleet.FleetError, fleet.load_yaml, path)
        self.assertIn("unknown GPU model 'X9'", str(error))
        path = _write(self.dir, 'dup.yaml', """hosts:
  - {name: a, vcpus: 8, memory_mb: 1024}
  - {name: a, vcpus: 8, memory_mb: 1024}
""")
        error = self.assertRaises(fleet.FleetError, fleet.load_yaml, path)
        self.assertIn('line 3', str(error))
        self.assertIn('duplicate host name a', str(error))


class TestTraces(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def test_default_trace_drops_fractional_pods(self):
        trace = workload.load_openb_trace('default')
        self.assertEqual(3078, trace.dropped_fractional)
        self.assertEqual(8152 - 3078, len(trace.requests))
        sizes = {r.gpus for r in trace.requests}
        self.assertEqual({0, 1, 2, 4, 8}, sizes)

    def test_gpu_spec_becomes_accepted_models(self):
        trace = workload.load_openb_trace('gpuspec10')
        specs = {r.models for r in trace.requests if r.models}
        self.assertIn(('V100M16', 'V100M32'), specs)

    def test_bad_row_names_file_and_line(self):
        path = _write(self.dir, 'pods.csv',
                      'name,cpu_milli,memory_mib,num_gpu,gpu_milli\n'
                      'p0,1000,1024,1,1000\n'
                      'p1,1000,lots,1,1000\n')
        error = self.assertRaises(workload.TraceError,
                                  workload.load_openb_trace, path)
        self.assertIn('pods.csv line 3', str(error))
        self.assertIn('memory_mib', str(error))

    def test_missing_column_is_named(self):
        path = _write(self.dir, 'pods.csv', 'name,cpu_milli\np0,1000\n')
        error = self.assertRaises(workload.TraceError,
                                  workload.load_openb_trace, path)
        self.assertIn('line 1: missing column(s) memory_mib', str(error))

    def test_atc_protocol_reaches_target_and_is_seeded(self):
        trace = workload.load_openb_trace('default')
        first = workload.atc_protocol(trace.requests, 1000, 1.3, seed=5)
        again = workload.atc_protocol(trace.requests, 1000, 1.3, seed=5)
        other = workload.atc_protocol(trace.requests, 1000, 1.3, seed=6)
        self.assertEqual(first, again)
        self.assertNotEqual(first, other)
        asked = sum(r.gpus for r in first)
        self.assertGreaterEqual(asked, 1300)
        self.assertLess(asked - first[-1].gpus, 1300)

    def test_clones_are_renamed(self):
        requests = [workload.VMRequest('a', 1, 1, 1)]
        arrivals = workload.atc_protocol(requests, 2, 1.5, seed=0)
        self.assertEqual(['a', 'a#1', 'a#2'], [r.name for r in arrivals])

    def test_scale_plain_keeps_gpu_requests_and_plain_shapes(self):
        requests = [workload.VMRequest('g', 8, 1024, 1),
                    workload.VMRequest('p', 4, 512, 0),
                    workload.VMRequest('q', 2, 256, 0)]
        scaled = workload.scale_plain(requests, 2.5, seed=3)
        self.assertEqual(['g', 'p', 'q', 'p~1', 'q~1'],
                         [r.name for r in scaled[:5]])
        self.assertEqual(6, len(scaled))  # 1 GPU request + 2.5 x 2 plain
        self.assertIn(scaled[5].name, ('p~2', 'q~2'))
        self.assertEqual({(4, 512), (2, 256)},
                         {(r.vcpus, r.memory_mb) for r in scaled[1:]})
        self.assertEqual(scaled, workload.scale_plain(requests, 2.5, seed=3))
        self.assertEqual(['g'], [r.name for r in
                                 workload.scale_plain(requests, 0)])
        self.assertRaises(workload.TraceError, workload.scale_plain,
                          requests, -1)

    def test_smallest_first_sorts_gpu_requests_around_plain_ones(self):
        arrivals = [workload.VMRequest(name, 1, 1, gpus) for name, gpus in
                    (('eight', 8), ('plain', 0), ('one', 1), ('four', 4),
                     ('other-one', 1))]
        self.assertEqual(['one', 'plain', 'other-one', 'four', 'eight'],
                         [r.name for r in workload.smallest_first(arrivals)])

    def test_synthetic_mix(self):
        mix = workload.parse_mix('1:3,8:1')
        self.assertEqual([(1, 0.75), (8, 0.25)], mix)
        requests = workload.synthetic(mix, 400, seed=1)
        eights = sum(1 for r in requests if r.gpus == 8)
        self.assertTrue(60 < eights < 140, eights)
        self.assertRaises(workload.TraceError, workload.parse_mix, '1-3')


class TestInventoryFleet(base.BaseTestCase):

    def test_agent_json_becomes_a_host(self):
        from gpu_passthrough_filter.inventory import model
        directory = self.useFixture(fixtures.TempDir()).path
        inventory = model.HostInventory(
            hostname='h1', iommu_enabled=True,
            numa_nodes=[model.NumaNode(0, [0, 1], 4 * 1024 * 1024),
                        model.NumaNode(1, [2, 3], 4 * 1024 * 1024)],
            iommu_groups={'5': ['0000:18:00.0', '0000:19:00.0']},
            gpus=[model.GPU(address, vendor='10de', device='2330',
                            numa_node=0, iommu_group='5',
                            isolation=tags.SHARED, switch='0000:17:00.0')
                  for address in ('0000:18:00.0', '0000:19:00.0')])
        _write(directory, 'h1.json', inventory.to_json())
        loaded = fleet.load_inventories(directory)
        host = loaded.hosts[0]
        self.assertEqual(('h1', 4, 8192, 2), (host.name, host.vcpus,
                                              host.memory_mb,
                                              host.numa_nodes))
        self.assertEqual([2, 2], [g.group_gpus for g in host.gpus])
        self.assertEqual('10de:2330', host.gpus[0].model.model_tag)

    def test_bad_inventory_names_the_file(self):
        directory = self.useFixture(fixtures.TempDir()).path
        _write(directory, 'broken.json', '{not json')
        error = self.assertRaises(fleet.FleetError, fleet.load_inventories,
                                  directory)
        self.assertIn('broken.json', str(error))
