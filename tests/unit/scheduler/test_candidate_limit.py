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
"""``[gpu_passthrough] max_candidates_per_host``: fewer candidates for nova.

Nova claims only the first candidate of the chosen host, while its
PciPassthroughFilter deep-copies the PCI stats once per candidate: keeping
one candidate per distinct GPU set, and only the best few, saves that cost
where no later nova filter judges feasible sets differently.
"""

from nova import objects
from nova.scheduler import filters as nova_filters

from gpu_passthrough_filter.scheduler import filter as gpu_filter
from tests.unit.scheduler import fakes


class CandidateLimitTest(fakes.TestCase):

    def setUp(self):
        super(CandidateLimitTest, self).setUp()
        self.flags(group='filter_scheduler', pci_in_placement=True)
        self.flags(max_candidates_per_host=3)
        self.filt = gpu_filter.GPUPassthroughFilter()

    def hgx(self, flavor):
        state = fakes.host_state('hgx', fakes.fake_gpus.eight_gpu_host(),
                                 in_placement=True)
        spec = fakes.request_spec(flavor)
        state.allocation_candidates = fakes.candidates(state, spec)
        return state, spec

    def kept_sets(self, state):
        return [fakes.candidate_addresses(state, candidate)
                for candidate in state.allocation_candidates]

    def test_three_distinct_sets_best_first(self):
        """h100:2 on HGX: the 3 best distinct sets stay, best first.

        56 ordered pairs in; the whole switch 18:00.0 + 2a:00.0 first.
        """
        state, spec = self.hgx(fakes.flavor('h100:2'))
        self.assertEqual(56, len(state.allocation_candidates))

        passed = nova_filters.HostFilterHandler().get_filtered_objects(
            [self.filt], [state], spec)

        self.assertEqual([state], list(passed))
        kept = self.kept_sets(state)
        self.assertEqual(3, len(kept))
        self.assertEqual(3, len({tuple(s) for s in kept}))
        self.assertEqual(['0000:18:00.0', '0000:2a:00.0'], kept[0])

    def test_guest_numa_topology_keeps_every_candidate(self):
        """A guest NUMA topology: nothing trimmed (56 stay).

        NUMATopologyFilter judges candidates by the guest cells.
        """
        state, spec = self.hgx(fakes.flavor('h100:2'))
        spec.numa_topology = objects.InstanceNUMATopology(cells=[
            objects.InstanceNUMACell(id=0, cpuset=set(range(8)),
                                     pcpuset=set(), memory=65536)])

        self.assertTrue(self.filt.host_passes(state, spec))

        self.assertEqual(56, len(state.allocation_candidates))
        self.assertEqual(['0000:18:00.0', '0000:2a:00.0'],
                         self.kept_sets(state)[0])

    def test_limit_zero_keeps_nova_behaviour(self):
        """The default 0: every feasible ordering stays (56)."""
        self.flags(max_candidates_per_host=0)
        state, spec = self.hgx(fakes.flavor('h100:2'))

        self.assertTrue(self.filt.host_passes(state, spec))

        self.assertEqual(56, len(state.allocation_candidates))
