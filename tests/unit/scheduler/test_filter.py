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
"""GPUPassthroughFilter on nova's FakeHostState with real PCI pools.

Hosts go through nova's real ``HostFilterHandler``, as in nova-scheduler.
"""

import fixtures
from nova.scheduler import filters as nova_filters

from gpu_passthrough_filter.scheduler import filter as gpu_filter
from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter import tags
from tests.unit.scheduler import fakes

FakeGPU = fakes.FakeGPU
HGX = fakes.fake_gpus.HGX_ADDRESSES


def isolated_pair(numa_nodes=(0, 1), switches=('none', 'none')):
    """Two isolated H100s at 81:00.0 and c1:00.0."""
    return [FakeGPU('0000:81:00.0', numa_node=numa_nodes[0],
                    switch=switches[0]),
            FakeGPU('0000:c1:00.0', numa_node=numa_nodes[1],
                    switch=switches[1])]


class FilterTestCase(fakes.TestCase):

    def setUp(self):
        super(FilterTestCase, self).setUp()
        self.log = self.useFixture(fixtures.FakeLogger(
            name='gpu_passthrough_filter', level='DEBUG'))
        self.filt = gpu_filter.GPUPassthroughFilter()

    def passing(self, states, flavor, **kwargs):
        """Names of the hosts that pass, through nova's filter handler."""
        spec = fakes.request_spec(flavor, **kwargs)
        result = nova_filters.HostFilterHandler().get_filtered_objects(
            [self.filt], states, spec)
        return [state.host for state in result or ()]


class GuardsTest(FilterTestCase):

    def test_guest_without_pci_passes_everywhere(self):
        """No PCI request: both the GPU host and an empty host pass."""
        states = [fakes.host_state('gpu', isolated_pair()),
                  fakes.host_state('empty')]
        self.assertEqual(['gpu', 'empty'],
                         self.passing(states, fakes.flavor(None)))

    def test_nic_request_is_left_to_nova(self):
        """A NIC alias is no GPU request: 'nic' passes.

        nova's PciPassthroughFilter judges the untagged NIC, not this filter.
        """
        nic = FakeGPU('0000:3b:00.0', model=fakes.NIC)
        states = [fakes.host_state('nic', [nic], tagged=False)]
        self.assertEqual(['nic'],
                         self.passing(states, fakes.flavor('cx7:1')))

    def test_rebuild_is_not_filtered(self):
        """Rebuild: 'busy' passes although it has no free GPU.

        The guest keeps its GPUs, which left the pools when it got them.
        """
        states = [fakes.host_state('busy', isolated_pair(),
                                   busy=['0000:81:00.0', '0000:c1:00.0'])]
        self.assertFalse(gpu_filter.GPUPassthroughFilter.RUN_ON_REBUILD)
        self.assertEqual([], self.passing(states, fakes.flavor('h100:1')))
        self.assertEqual(['busy'], self.passing(
            states, fakes.flavor('h100:1'), rebuild=True))


class IsolationTest(FilterTestCase):

    def test_strict_refuses_shared_half_and_unknown(self):
        """Strict, 1 GPU: only 'isolated' passes.

        'half' has a shared group whose mate is busy, 'unknown' an unproven
        GPU.
        """
        states = [
            fakes.host_state('half', [
                FakeGPU('0000:81:00.0', iommu_group=7),
                FakeGPU('0000:82:00.0', iommu_group=7)],
                busy=['0000:82:00.0']),
            fakes.host_state('unknown', [
                FakeGPU('0000:81:00.0', isolation=tags.UNKNOWN)]),
            fakes.host_state('isolated', [FakeGPU('0000:81:00.0')]),
        ]
        self.assertEqual(['isolated'],
                         self.passing(states, fakes.flavor('h100:1')))
        self.assertIn('GPUPassthroughFilter rejected host half:',
                      self.log.output)
        self.assertIn('GPUPassthroughFilter rejected host unknown:',
                      self.log.output)

    def test_busy_group_mate_rules_out_gpu_under_any(self):
        """Isolation any, busy group mate: only 'free' passes.

        VFIO refuses a group whose other GPU is given to another guest.
        """
        shared = [FakeGPU('0000:81:00.0', iommu_group=7),
                  FakeGPU('0000:82:00.0', iommu_group=7)]
        states = [fakes.host_state('half', shared, busy=['0000:82:00.0']),
                  fakes.host_state('free', shared)]
        flavor = fakes.flavor('h100:1', gpu_passthrough__isolation='any')
        self.assertEqual(['free'], self.passing(states, flavor))

    def test_strict_takes_a_shared_group_whole(self):
        """Strict: 'shared' serves 2 GPUs (whole group), not 1 GPU."""
        shared = [FakeGPU('0000:81:00.0', iommu_group=7),
                  FakeGPU('0000:82:00.0', iommu_group=7)]
        states = [fakes.host_state('shared', shared)]
        self.assertEqual(['shared'],
                         self.passing(states, fakes.flavor('h100:2')))
        self.assertEqual([], self.passing(states, fakes.flavor('h100:1')))

    def test_untagged_host_follows_untagged_host_policy(self):
        """'by-hand' fails strict unless untagged_host_policy=isolated."""
        states = [fakes.host_state(
            'by-hand', [FakeGPU('0000:81:00.0')], tagged=False)]
        flavor = fakes.flavor('h100:1')
        self.assertEqual([], self.passing(states, flavor))
        self.assertIn('1 GPUs without agent tags', self.log.output)
        self.flags(untagged_host_policy='isolated')
        self.assertEqual(['by-hand'], self.passing(states, flavor))
        self.flags(untagged_host_policy='unknown')
        self.assertEqual(['by-hand'], self.passing(
            states, fakes.flavor('h100:1', gpu_passthrough__isolation='any')))


class LocalityTest(FilterTestCase):

    def test_numa_required_needs_one_node(self):
        """2 GPUs, numa required: 'same' wins; preferred: both pass.

        'split' has one GPU per NUMA node.
        """
        states = [fakes.host_state('split', isolated_pair((0, 1))),
                  fakes.host_state('same', isolated_pair((1, 1)))]
        required = fakes.flavor(
            'h100:2', gpu_passthrough__numa_affinity='required')
        self.assertEqual(['same'], self.passing(states, required))
        self.assertIn('needs 2 GPUs of 10de:2330 on one NUMA node; largest '
                      'usable NUMA node block is 1', self.log.output)
        self.assertEqual(['split', 'same'], self.passing(
            states, fakes.flavor('h100:2')))

    def test_switch_locality(self):
        """locality=switch: only 'switched' (one switch) passes."""
        states = [
            fakes.host_state('numa', isolated_pair((0, 0))),
            fakes.host_state('switched', isolated_pair(
                (0, 0), ('0000:80:00.0', '0000:80:00.0'))),
        ]
        flavor = fakes.flavor('h100:2', gpu_passthrough__locality='switch')
        self.assertEqual(['switched'], self.passing(states, flavor))

    def test_model_must_match(self):
        """An A100 request passes only 'a100' of an H100 and an A100 host."""
        states = [
            fakes.host_state('h100', [FakeGPU('0000:81:00.0')]),
            fakes.host_state('a100', [FakeGPU('0000:81:00.0',
                                              model=fakes.A100)]),
        ]
        self.assertEqual(['a100'],
                         self.passing(states, fakes.flavor('a100:1')))


class ErrorPolicyTest(FilterTestCase):

    def test_bad_extra_spec_is_logged_once_and_fails_closed(self):
        """Bad extra spec past the API: no host passes, one log line.

        Three hosts, one request: one warning naming the value, no
        traceback (before: two tracebacks per host).
        """
        states = [fakes.host_state(name, isolated_pair())
                  for name in ('a', 'b', 'c')]
        flavor = fakes.flavor('h100:1', gpu_passthrough__locality='sideways')
        self.assertEqual([], self.passing(states, flavor))
        self.assertEqual(1, self.log.output.count('refused by its flavor'))
        self.assertIn('sideways', self.log.output)
        self.assertNotIn('Traceback', self.log.output)
        self.assertNotIn('failed on host', self.log.output)

    def test_non_positive_count_is_logged(self):
        """A PCI request of 0 devices past the API: a line, not a demand."""
        states = [fakes.host_state('gpu', isolated_pair())]
        spec = fakes.request_spec(fakes.flavor('h100:1'))
        spec.pci_requests.requests[0].count = 0
        result = nova_filters.HostFilterHandler().get_filtered_objects(
            [self.filt], states, spec)
        self.assertEqual(['gpu'], [s.host for s in result])
        self.assertIn('asks for 0 devices; not a GPU demand',
                      self.log.output)

    def test_fail_open(self):
        """error_policy=fail_open: the host passes despite the error."""
        self.flags(error_policy='fail_open')
        states = [fakes.host_state('gpu', isolated_pair())]
        flavor = fakes.flavor('h100:1', gpu_passthrough__locality='sideways')
        self.assertEqual(['gpu'], self.passing(states, flavor))


class CandidatesTest(FilterTestCase):
    """PCI-in-Placement: candidates pruned and the best one first."""

    def setUp(self):
        super(CandidatesTest, self).setUp()
        self.flags(group='filter_scheduler', pci_in_placement=True)

    def state_with_candidates(self, flavor, busy=()):
        state = fakes.host_state('hgx', fakes.fake_gpus.eight_gpu_host(),
                                 busy=busy, in_placement=True)
        spec = fakes.request_spec(flavor)
        state.allocation_candidates = fakes.candidates(state, spec)
        return state, spec

    def test_best_pair_first(self):
        """2 GPUs on HGX: the pair of one whole switch comes first.

        All 56 ordered candidates stay (every pair is feasible under
        'preferred'); 18:00.0 + 2a:00.0 is the first whole switch.
        """
        state, spec = self.state_with_candidates(fakes.flavor('h100:2'))
        self.assertEqual(56, len(state.allocation_candidates))

        self.assertTrue(self.filt.host_passes(state, spec))

        self.assertEqual(56, len(state.allocation_candidates))
        first = fakes.candidate_addresses(
            state, state.allocation_candidates[0])
        self.assertEqual(['0000:18:00.0', '0000:2a:00.0'], first)

    def test_required_numa_prunes_cross_numa_pairs(self):
        """numa_affinity=required keeps the 24 ordered same-node pairs."""
        state, spec = self.state_with_candidates(fakes.flavor(
            'h100:2', gpu_passthrough__numa_affinity='required'))

        self.assertTrue(self.filt.host_passes(state, spec))

        kept = [fakes.candidate_addresses(state, c)
                for c in state.allocation_candidates]
        self.assertEqual(24, len(kept))
        numa = {gpu.address: gpu.numa_node
                for gpu in fakes.fake_gpus.eight_gpu_host()}
        self.assertTrue(all(numa[a] == numa[b] for a, b in kept))

    def test_best_fit_breaks_a_half_used_switch(self):
        """1 GPU, 18:00.0 busy: its switch mate 2a:00.0 comes first.

        Whole switches stay free for 2-GPU guests.
        """
        state, spec = self.state_with_candidates(
            fakes.flavor('h100:1'), busy=['0000:18:00.0'])

        self.assertTrue(self.filt.host_passes(state, spec))

        self.assertEqual(['0000:2a:00.0'], fakes.candidate_addresses(
            state, state.allocation_candidates[0]))

    def test_no_feasible_candidate_rejects_with_reason(self):
        """locality=switch for 4 GPUs: no candidate is one switch."""
        state, spec = self.state_with_candidates(fakes.flavor(
            'h100:4', gpu_passthrough__locality='switch'))
        before = len(state.allocation_candidates)

        self.assertFalse(self.filt.host_passes(state, spec))

        self.assertEqual([], state.allocation_candidates)
        self.assertIn('none of %d allocation candidates is a feasible GPU '
                      'set for 4 GPUs of 10de:2330' % before,
                      self.log.output)

    def test_host_without_candidates_is_rejected(self):
        """No candidate left for the host: nothing to claim, rejected.

        The host has free GPUs, so the legacy feasibility check alone
        would pass it (found by the hypothesis property test).
        """
        state, spec = self.state_with_candidates(fakes.flavor('h100:1'))
        state.allocation_candidates = []

        self.assertFalse(self.filt.host_passes(state, spec))


class CacheTest(FilterTestCase):

    def test_facts_cached_until_pools_change(self):
        """One HostFacts per host state until nova consumes a GPU."""
        state = fakes.host_state('gpu', isolated_pair())
        opts = fakes.nova.conf.CONF.gpu_passthrough
        first = host_view.host_facts(state, opts)
        self.assertIs(first, host_view.host_facts(state, opts))
        spec = fakes.request_spec(fakes.flavor('h100:1'))

        # What the scheduler does between two instances of a multi-create.
        state.pci_stats.apply_requests(spec.pci_requests.requests, {}, None)

        second = host_view.host_facts(state, opts)
        self.assertIsNot(first, second)
        self.assertEqual((2, 1), (first.index.free, second.index.free))


class GPUReserveTest(FilterTestCase):
    """[gpu_passthrough] reserved_*_per_free_gpu keep plain guests away."""

    def states(self):
        hgx = fakes.fake_gpus.eight_gpu_host()
        return [
            # 8 free GPUs, 96 vCPUs: 96 kept at 12 per GPU, none spare.
            fakes.host_state('gpu-full-reserve', hgx, vcpus=96),
            # 2 free GPUs, 64 vCPUs: 24 kept, 40 spare.
            fakes.host_state('gpu-spare', hgx, busy=HGX[2:],
                             vcpus=64),
            # No free GPU: nothing to keep.
            fakes.host_state('gpu-busy', hgx, busy=HGX, vcpus=16),
            fakes.host_state('cpu-only', vcpus=16),
        ]

    def test_off(self):
        """No reserve: a plain guest passes every host."""
        self.flags(reserve_share=0.0)
        self.passing(self.states(), fakes.flavor('h100:1', vcpus=24))
        self.assertEqual(
            ['gpu-full-reserve', 'gpu-spare', 'gpu-busy', 'cpu-only'],
            self.passing(self.states(), fakes.flavor(None, vcpus=16)))

    def test_plain_guest_must_leave_the_reserve(self):
        """12 vCPUs per free GPU: a 16-vCPU guest loses gpu-full-reserve."""
        self.flags(reserved_vcpus_per_free_gpu=12.0)
        self.assertEqual(
            ['gpu-spare', 'gpu-busy', 'cpu-only'],
            self.passing(self.states(), fakes.flavor(None, vcpus=16)))
        self.assertIn('rejected host gpu-full-reserve: a guest without GPUs '
                      'would leave 80 vCPUs for 8 free GPUs, which keep 96',
                      self.log.output)

    def test_ram_reserve(self):
        """64 GiB per free GPU: 8 free GPUs on 512 GiB keep it all."""
        self.flags(reserved_ram_mb_per_free_gpu=64 * 1024)
        self.assertEqual(
            ['gpu-spare', 'gpu-busy', 'cpu-only'],
            self.passing(self.states(),
                         fakes.flavor(None, vcpus=1, memory_mb=1024)))

    def test_learned_reserve(self):
        """reserve_share 0.5 of 24 vCPUs per GPU seen: 12 per free GPU."""
        self.flags(reserve_share=0.5)
        self.passing(self.states(), fakes.flavor('h100:1', vcpus=24))
        self.assertEqual(
            ['gpu-spare', 'gpu-busy', 'cpu-only'],
            self.passing(self.states(), fakes.flavor(None, vcpus=16)))
        self.assertIn('which keep 96', self.log.output)

    def test_a_cold_scheduler_keeps_no_learned_reserve(self):
        """No GPU guest seen yet: the plain guest passes every host."""
        self.flags(reserve_share=0.5)
        self.assertEqual(
            ['gpu-full-reserve', 'gpu-spare', 'gpu-busy', 'cpu-only'],
            self.passing(self.states(), fakes.flavor(None, vcpus=16)))

    def test_the_operators_figure_wins_over_the_learned_one(self):
        """reserved_vcpus_per_free_gpu 1 overrides 0.5 x 24."""
        self.flags(reserve_share=0.5, reserved_vcpus_per_free_gpu=1.0)
        self.passing(self.states(), fakes.flavor('h100:1', vcpus=24))
        self.assertIn('gpu-full-reserve', self.passing(
            self.states(), fakes.flavor(None, vcpus=16)))

    def test_gpu_guests_are_not_held_back(self):
        """A 1-GPU guest with 90 vCPUs still passes gpu-full-reserve."""
        self.flags(reserved_vcpus_per_free_gpu=12.0)
        self.assertIn('gpu-full-reserve', self.passing(
            self.states(), fakes.flavor('h100:1', vcpus=90)))
