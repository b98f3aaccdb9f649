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
"""Multi-GPU guests with PCI in Placement, as a GPU cloud configures it.

Real nova (API, conductor, scheduler, computes on the fake libvirt driver)
and Placement 16 with the project's recommended Placement options
(:data:`gpu_passthrough_filter.recommended.PLACEMENT_OPTIONS`); the
scheduler runs the recommended pipeline: GPUPassthroughFilter before the
fast forms of nova's PCI filters (FastPciPassthroughFilter,
FastNUMATopologyFilter), ``max_candidates_per_host = 1`` and nova's
weighers set to pack (:data:`gpu_passthrough_filter.recommended.
SCHEDULER_WEIGHT_OPTIONS`). With Placement's
defaults the 8-GPU query of the first test does not finish in minutes
(doc/source/admin/placement-at-scale.rst).
"""

import time

from gpu_passthrough_filter import recommended
from tests import fake_gpus
from tests.functional import base

FakeGPU = fake_gpus.FakeGPU

#: Seconds one 8-GPU boot may take here, scheduling included; Placement's
#: defaults take minutes for the same query on the same host.
BOOT_BOUND_S = 60


def _filters_before_pci():
    """GPUPassthroughFilter, then the fast forms of nova's PCI filters.

    The project's recommended pipeline (``nova-conf enable
    --add-nova-gpu-filters --fast-nova-filters``): these servers boot
    through FastPciPassthroughFilter and FastNUMATopologyFilter.
    """
    return ('GPUPassthroughFilter', 'FastPciPassthroughFilter',
            'FastNUMATopologyFilter')


def sixteen_gpu_host():
    """16 isolated GPUs: 2 NUMA nodes x 4 PCIe switches x 2 GPUs."""
    gpus = []
    for index in range(16):
        switch = '0000:%02x:00.0' % (0x10 + 0x10 * (index // 2))
        gpus.append(FakeGPU('0000:%02x:00.0' % (0x11 + 8 * index),
                            numa_node=index // 8, switch=switch))
    return gpus


class RecommendedPlacementTestBase(base.GPUServersTestBase):
    PCI_IN_PLACEMENT = True
    PLACEMENT_OPTIONS = recommended.placement_overrides()
    GPU_FILTERS = ()
    EXTRA_FILTERS = _filters_before_pci()
    EXTRA_AVAILABLE_FILTERS = (base.PROJECT_ALL_FILTERS,)
    WEIGHT_CLASSES = ('nova.scheduler.weights.all_weighers',
                      'gpu_passthrough_filter.scheduler.all_weighers')

    def setUp(self):
        super().setUp()
        self.flags(max_candidates_per_host=1, group='gpu_passthrough')
        for option in recommended.SCHEDULER_WEIGHT_OPTIONS:
            self.flags(group=option.group, **{option.name: option.value})

    def gpus_by_switch(self, hostname):
        switches = {}
        for gpu in self.gpu_hosts[hostname]:
            switches.setdefault(gpu.switch, set()).add(gpu.address)
        return switches

    def numa_of(self, hostname, addresses):
        nodes = {gpu.address: gpu.numa_node
                 for gpu in self.gpu_hosts[hostname]}
        return {nodes[address] for address in addresses}


class MultiGPUTest(RecommendedPlacementTestBase):

    def test_eight_gpu_server_on_a_free_eight_gpu_host(self):
        """8 of 8 GPUs schedules in bounded time and takes every GPU."""
        self.start_gpu_compute('hgx', fake_gpus.eight_gpu_host())
        flavor = self.create_gpu_flavor('h100:8', vcpu=1)

        start = time.monotonic()
        server = self.boot_server(flavor)
        seconds = time.monotonic() - start

        self.assert_server_gpus(server, 'hgx', fake_gpus.HGX_ADDRESSES)
        self.assertLess(seconds, BOOT_BOUND_S)

    def test_numa_required_halves_and_quarters(self):
        """4+4 take one NUMA node each; 2+2+2+2 one switch each.

        ``numa_affinity=required``: every set on one NUMA node; the pairs
        fill whole switches (no switch left with one free GPU).
        """
        self.start_gpu_compute('halves', fake_gpus.eight_gpu_host())
        numa = {'gpu_passthrough:numa_affinity': 'required'}
        four = self.create_gpu_flavor('h100:4', vcpu=1, extra_specs=numa)
        servers = [self.boot_server(four) for _ in range(2)]
        nodes = [self.numa_of('halves', self.server_pci_addresses(s))
                 for s in servers]
        self.assertEqual([1, 1], [len(n) for n in nodes])
        self.assertEqual({0, 1}, nodes[0] | nodes[1])

        self.start_gpu_compute('quarters', fake_gpus.eight_gpu_host())
        two = self.create_gpu_flavor('h100:2', vcpu=1, extra_specs=numa)
        pairs = []
        for _ in range(4):
            server = self.boot_server(two, host='quarters')
            pairs.append(set(self.server_pci_addresses(server)))
        switches = list(self.gpus_by_switch('quarters').values())
        self.assertEqual(sorted(map(sorted, switches)),
                         sorted(map(sorted, pairs)))
        self.assertEqual([], self.free_gpu_addresses('quarters'))

    def test_sixteen_gpu_host_takes_two_eight_gpu_guests(self):
        """Each 8-GPU guest gets one whole NUMA node (4 switches)."""
        self.start_gpu_compute('hgx16', sixteen_gpu_host(), cores_per_node=2)
        eight = self.create_gpu_flavor('h100:8', vcpu=1)
        servers = [self.boot_server(eight) for _ in range(2)]
        nodes = [self.numa_of('hgx16', self.server_pci_addresses(s))
                 for s in servers]
        self.assertEqual([{0}, {1}], sorted(nodes, key=min))
        self.assertEqual([], self.free_gpu_addresses('hgx16'))


class OneCandidatePerHostTest(RecommendedPlacementTestBase):
    """Placement returns one candidate per host, as at 1,000 hosts."""

    PLACEMENT_OPTIONS = dict(recommended.placement_overrides())
    PLACEMENT_OPTIONS[('placement', 'max_allocation_candidates')] = 1

    def test_best_set_claimed_when_placement_left_it_out(self):
        """Each 2nd 1-GPU guest takes the previous one's switch mate.

        Placement offers one GPU of the free ones, its own pick (the mate
        one time in seven, then in five); the filter builds the candidate
        of the mate, which keeps the other switch pairs whole. Four guests
        fill exactly two switches.
        """
        self.start_gpu_compute('hgx', fake_gpus.eight_gpu_host())
        one = self.create_gpu_flavor('h100:1', vcpu=1)
        log = self.capture_scheduler_log()
        taken = [self.server_pci_addresses(self.boot_server(one))[0]
                 for _ in range(4)]

        pairs = [pair for pair in self.gpus_by_switch('hgx').values()
                 if pair & set(taken)]
        self.assertEqual(2, len(pairs), taken)
        self.assertEqual(set(taken), set().union(*pairs))
        self.assertIn('kept 1 of 1 allocation candidates', log.output)
