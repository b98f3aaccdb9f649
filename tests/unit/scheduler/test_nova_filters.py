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
"""The fast forms of nova's PCI filters decide exactly as nova's own.

Real host states (built from compute records the way Nova 34 builds them,
usage from earlier boots through the simulator's scheduler loop), real
request specs, Placement's candidates from the simulator's model (PCI in
Placement) or the root candidate (legacy). For every host, nova's class
and the fast class judge copies of the same candidates: same verdict, same
candidates kept, twice (the second time from the cache), and for hosts
whose pools are equal (legacy PCI shares verdicts between such hosts).
"""

import copy

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from nova.scheduler.filters import numa_topology_filter
from nova.scheduler.filters import pci_passthrough_filter
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslotest import base

from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter.scheduler import nova_filters
from gpu_passthrough_filter.sim import fleet
from gpu_passthrough_filter.sim import nova_env
from gpu_passthrough_filter.sim import runner
from gpu_passthrough_filter.sim import workload

H100 = fleet.GPUModel('H100', '10de', '2330')
A100 = fleet.GPUModel('A100', '10de', '20b5')

_hosts = st.lists(st.tuples(st.sampled_from([4, 8, 16]), st.booleans(),
                            st.sampled_from([H100, A100])),
                  min_size=1, max_size=3)
_earlier = st.lists(st.integers(0, 8), max_size=5)
_asks = st.tuples(st.integers(1, 9), st.sampled_from([(), ('H100',),
                                                      ('A100',)]))
_numa = st.sampled_from([{}, {'hw:numa_nodes': '1'},
                         {'hw:numa_nodes': '2'},
                         {'hw:cpu_policy': 'dedicated'},
                         {'hw:pci_numa_affinity_policy': 'required',
                          'hw:numa_nodes': '1'}])


def _fleet(shapes):
    return fleet.Fleet([
        fleet.SimHost('host-%d' % index, vcpus=64, memory_mb=512 * 1024,
                      gpus=fleet.build_gpus(gpus, model,
                                            shared_groups=shared))
        for index, (gpus, shared, model) in enumerate(shapes)])


def _vm(name, gpus, models=()):
    return workload.VMRequest(name, vcpus=4 * max(gpus, 1),
                              memory_mb=16384 * max(gpus, 1), gpus=gpus,
                              models=models)


class TestSameVerdictsAsNova(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(config_fixture.Config(cfg.CONF))
        host_view.FACTS_BY_VALUE.clear()
        nova_filters.PCI_VERDICTS.clear()

    def _simulation(self, shapes, earlier, pci_in_placement):
        sim_fleet = _fleet(shapes)
        models = [('H100',), ('A100',), ()]
        aliases = nova_env.AliasBook({'H100': H100, 'A100': A100}, models)
        policy = runner.Policy('nova', pci_in_placement=pci_in_placement)
        simulation = runner.Simulation(sim_fleet, policy, aliases,
                                       fresh_host_states=True)
        self.addCleanup(simulation.close)
        for index, gpus in enumerate(earlier):
            simulation.schedule(index, _vm('earlier-%d' % index, gpus))
        simulation._read_host_states()
        return simulation

    def _candidates(self, simulation, spec):
        answer = simulation.placement.allocation_candidates(
            simulation.states, spec, simulation.policy.pci_in_placement)
        return [(simulation.by_uuid[uuid], candidates)
                for uuid, candidates in answer.candidates.items()]

    def _judge(self, plugin, state, spec, candidates):
        state.allocation_candidates = copy.deepcopy(candidates)
        state.limits = {}
        verdict = plugin.host_passes(state, spec)
        # NOTE: nova's limits objects compare by identity; their fields
        # are what a filter decided.
        limits = {name: value.obj_to_primitive()
                  for name, value in state.limits.items()}
        return verdict, state.allocation_candidates, limits

    def _assert_same(self, nova_plugin, fast_plugin, simulation, spec):
        judged = 0
        for state, candidates in self._candidates(simulation, spec):
            expected = self._judge(nova_plugin, state, spec, candidates)
            for _ in range(2):
                self.assertEqual(
                    expected, self._judge(fast_plugin, state, spec,
                                          candidates))
            judged += 1
        return judged

    @settings(max_examples=25, deadline=None)
    @given(_hosts, _earlier, _asks, st.booleans())
    def test_pci_passthrough_filter(self, shapes, earlier, ask,
                                    pci_in_placement):
        simulation = self._simulation(shapes, earlier, pci_in_placement)
        spec = nova_env.request_spec(_vm('asked', *ask), 99, {})
        self._assert_same(pci_passthrough_filter.PciPassthroughFilter(),
                          nova_filters.FastPciPassthroughFilter(),
                          simulation, spec)

    @settings(max_examples=20, deadline=None)
    @given(_hosts, _earlier, _asks, _numa, st.booleans())
    def test_numa_topology_filter(self, shapes, earlier, ask, numa_specs,
                                  pci_in_placement):
        simulation = self._simulation(shapes, earlier, pci_in_placement)
        spec = nova_env.request_spec(_vm('asked', *ask), 99, numa_specs)
        self._assert_same(numa_topology_filter.NUMATopologyFilter(),
                          nova_filters.FastNUMATopologyFilter(),
                          simulation, spec)

    def test_equal_pools_share_verdicts_in_legacy_pci(self):
        """Two idle 8-GPU hosts: one support check, the second a lookup."""
        simulation = self._simulation([(8, False, H100)] * 2, [], False)
        spec = nova_env.request_spec(_vm('asked', 8), 99, {})
        fast = nova_filters.FastPciPassthroughFilter()
        calls = []
        for state, candidates in self._candidates(simulation, spec):
            support = state.pci_stats.support_requests
            state.pci_stats.support_requests = (
                lambda *a, _s=support, **k: calls.append(1) or _s(*a, **k))
            self.assertTrue(self._judge(fast, state, spec, candidates)[0])
        self.assertEqual(1, len(calls))

    def test_a_used_gpu_changes_the_key(self):
        """After a boot the host is judged again, not from the cache."""
        simulation = self._simulation([(8, False, H100)], [], True)
        fast = nova_filters.FastPciPassthroughFilter()
        spec = nova_env.request_spec(_vm('asked', 8), 99, {})
        state, candidates = self._candidates(simulation, spec)[0]
        self.assertTrue(self._judge(fast, state, spec, candidates)[0])
        simulation.schedule(0, _vm('one', 1))
        simulation._read_host_states()
        spec = nova_env.request_spec(_vm('asked', 8), 100, {})
        self.assertEqual([], self._candidates(simulation, spec))
        legacy = self._simulation([(8, False, H100)], [1], False)
        state, candidates = self._candidates(legacy, spec)[0]
        self.assertFalse(self._judge(fast, state, spec, candidates)[0])

    def test_a_key_it_cannot_build_goes_to_nova(self):
        """A request without a request_id: nova's own code decides."""
        simulation = self._simulation([(8, False, H100)], [], True)
        spec = nova_env.request_spec(_vm('asked', 2), 99, {})
        state, candidates = self._candidates(simulation, spec)[0]
        spec.pci_requests.requests[0].request_id = None
        nova = pci_passthrough_filter.PciPassthroughFilter()
        fast = nova_filters.FastPciPassthroughFilter()
        self.assertRaises(TypeError, self._judge, nova, state, spec,
                          candidates)
        self.assertRaises(TypeError, self._judge, fast, state, spec,
                          candidates)
