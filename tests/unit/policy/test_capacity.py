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
"""Capacity, explanations and fragmentation from the policy core."""

import hypothesis
from hypothesis import strategies as st
from oslotest import base

from gpu_passthrough_filter.fleet import flavors
from gpu_passthrough_filter.policy import capacity
from gpu_passthrough_filter.policy import model

H100 = '10de:2330'


def host(free_per_node=(4, 4), used_per_node=(0, 0), per_switch=2,
         name='h'):
    """GPUs on NUMA nodes, ``per_switch`` per switch, some in use."""
    gpus = []
    for node, (free, used) in enumerate(zip(free_per_node, used_per_node)):
        for index in range(free + used):
            number = len(gpus)
            gpus.append(model.GPUView(
                address='0000:%02x:00.0' % (number + 1), model=H100,
                numa_node=node, iommu_group=str(number), isolation='isolated',
                switch='sw%d-%d' % (node, index // per_switch),
                free=index >= used))
    return model.HostView(name, tuple(gpus))


def gpus(count, **policies):
    return model.GPURequest(demands=(model.GPUDemand(count,
                                                     frozenset([H100])),),
                            **policies)


class GuestsThatFitTest(base.BaseTestCase):

    def test_gpus_bound(self):
        found = capacity.guests_that_fit(host(), capacity.Room(), gpus(2),
                                         {})
        self.assertEqual(4, found.guests)
        self.assertIn('0 free', found.blocker)

    def test_ram_bound_with_numbers(self):
        room = capacity.Room({'MEMORY_MB': 5000, 'VCPU': 100})
        found = capacity.guests_that_fit(host(), room, gpus(1),
                                         {'MEMORY_MB': 2048, 'VCPU': 4})
        self.assertEqual(2, found.guests)
        self.assertEqual('MEMORY_MB: 904 free, the guest needs 2048',
                         found.blocker)

    def test_max_unit(self):
        room = capacity.Room({'VCPU': 64}, max_unit={'VCPU': 16})
        found = capacity.guests_that_fit(host(), room, gpus(1),
                                         {'VCPU': 32})
        self.assertEqual(0, found.guests)
        self.assertIn('at most 16 per guest', found.blocker)

    def test_locality_counts_whole_switches(self):
        # Three free GPUs per node, two per switch: one pair per node fits
        # under one switch; the third GPU of each node cannot pair.
        view = host(free_per_node=(3, 3), used_per_node=(1, 1))
        found = capacity.guests_that_fit(view, capacity.Room(),
                                         gpus(2, locality='switch'), {})
        self.assertEqual(2, found.guests)
        self.assertIn('switch', found.blocker)

    def test_no_gpu_flavor_counts_room_only(self):
        room = capacity.Room({'VCPU': 10})
        found = capacity.guests_that_fit(host(), room, model.GPURequest(),
                                         {'VCPU': 3})
        self.assertEqual(3, found.guests)

    def test_stops_at_the_limit(self):
        found = capacity.guests_that_fit(host(), capacity.Room(),
                                         model.GPURequest(), {}, limit=5)
        self.assertEqual((5, 'counted up to 5'),
                         (found.guests, found.blocker))

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(st.lists(st.integers(0, 4), min_size=1, max_size=3),
                      st.integers(1, 4))
    def test_never_more_than_the_free_gpus_allow(self, frees, count):
        view = host(free_per_node=tuple(frees),
                    used_per_node=tuple(0 for _ in frees))
        found = capacity.guests_that_fit(view, capacity.Room(), gpus(count),
                                         {})
        self.assertLessEqual(found.guests * count, sum(frees))
        # With no locality asked, every whole multiple of ``count`` fits.
        self.assertEqual(sum(frees) // count, found.guests)


class ExplainTest(base.BaseTestCase):

    def test_fits_with_the_set_the_filter_picks(self):
        room = capacity.Room({'VCPU': 8, 'MEMORY_MB': 4096})
        found = capacity.explain(host(), room, gpus(2, locality='switch'),
                                 {'VCPU': 4, 'MEMORY_MB': 1024})
        self.assertTrue(found.fits)
        self.assertEqual(2, len(found.gpus))
        checks = dict(found.checks)
        self.assertEqual('ok: 8 free, needs 4', checks['VCPU'])
        self.assertEqual('8 free of 8 (0 in use or held)', checks['GPUs'])
        self.assertIn('ok: ', checks['GPU set'])

    def test_refused_says_every_reason(self):
        room = capacity.Room({'VCPU': 2})
        found = capacity.explain(host(free_per_node=(1, 0),
                                      used_per_node=(3, 4)), room,
                                 gpus(2), {'VCPU': 4, 'DISK_GB': 10})
        self.assertFalse(found.fits)
        checks = dict(found.checks)
        self.assertEqual('VCPU: 2 free, the guest needs 4', checks['VCPU'])
        self.assertEqual('not reported: not checked', checks['DISK_GB'])
        self.assertEqual('1 free of 8 (7 in use or held)', checks['GPUs'])
        self.assertTrue(checks['GPU set'].startswith('none: '))


class FleetTest(base.BaseTestCase):

    def test_blocks_stranding_and_fragmentation(self):
        whole = capacity.CloudHost(host(name='whole'),
                                   capacity.Room({'VCPU': 64}))
        broken = capacity.CloudHost(
            host(free_per_node=(3, 2), used_per_node=(1, 2), name='broken'),
            capacity.Room({'VCPU': 64}), held=1)
        starved = capacity.CloudHost(host(name='starved'),
                                     capacity.Room({'VCPU': 2}))
        summary = capacity.fleet_summary(
            [whole, broken, starved], {'VCPU': 4}, sizes=(1, 2, 4))
        self.assertEqual(8 + 5 + 8, summary.free_gpus)
        self.assertEqual(1, summary.held_gpus)
        self.assertEqual(8, summary.stranded_gpus)
        self.assertEqual({1: 21, 2: 4 + 2 + 4, 4: 2 + 0 + 2},
                         summary.blocks)
        # 16 of the 21 free GPUs are in free 4-GPU blocks.
        self.assertAlmostEqual(5 / 21, summary.fragmentation)

    def test_empty_fleet(self):
        summary = capacity.fleet_summary([], {'VCPU': 1})
        self.assertEqual((0, 0.0), (summary.free_gpus,
                                    summary.fragmentation))


class FlavorTest(base.BaseTestCase):

    def test_alias_models(self):
        demands = flavors.demands(
            {'pci_passthrough:alias': 'h100:2, gpu-10de-20b2:1'},
            {'h100': H100})
        self.assertEqual(
            (model.GPUDemand(2, frozenset([H100])),
             model.GPUDemand(1, frozenset(['10de:20b2']))), demands)

    def test_unknown_alias_says_what_to_pass(self):
        error = self.assertRaises(flavors.FlavorError, flavors.demands,
                                  {'pci_passthrough:alias': 'big:1'}, {})
        self.assertIn('--alias big=VENDOR:PRODUCT', str(error))

    def test_needs_as_nova_asks_placement(self):
        self.assertEqual(
            {'PCPU': 4, 'MEMORY_MB': 8192, 'DISK_GB': 22, 'VGPU': 1},
            flavors.needs(4, 8192, 20, ephemeral_gb=1, swap_mb=513,
                          extra_specs={'hw:cpu_policy': 'dedicated',
                                       'resources:VGPU': '1'}))

    def test_policies_come_from_the_extra_specs(self):
        request = flavors.request(
            4, 1024, {'pci_passthrough:alias': 'h100:2',
                      'gpu_passthrough:locality': 'switch'}, {'h100': H100})
        self.assertEqual(model.Locality.SWITCH, request.locality)
        self.assertRaises(flavors.FlavorError, flavors.request, 4, 1024,
                          {'gpu_passthrough:locality': 'rack'}, {})

    @hypothesis.given(st.text(max_size=30))
    def test_any_alias_text_is_read_or_refused_clearly(self, text):
        try:
            found = flavors.demands({'pci_passthrough:alias': text},
                                    {'h100': H100})
        except flavors.FlavorError as exc:
            self.assertIn('alias', str(exc))
        else:
            self.assertTrue(all(d.count >= 1 for d in found))

    def test_alias_map(self):
        self.assertEqual({'h100': H100},
                         flavors.parse_alias_map(['h100=10DE:2330']))
        self.assertRaises(flavors.FlavorError, flavors.parse_alias_map,
                          ['h100'])
