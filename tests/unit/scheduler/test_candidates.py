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
"""``[gpu_passthrough] claim_best_set``: the best set when Placement left
it out of a host's candidates (capped and in an order of its own)."""

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from nova.scheduler import filters as nova_filters

from gpu_passthrough_filter.policy import feasibility
from gpu_passthrough_filter.scheduler import candidates
from gpu_passthrough_filter.scheduler import filter as gpu_filter
from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter.scheduler import request_view
from tests.unit.scheduler import fakes

FakeGPU = fakes.FakeGPU
#: The HGX host's switch pairs, NUMA node 0 first.
PAIRS = [set(fakes.fake_gpus.HGX_ADDRESSES[i:i + 2]) for i in (0, 2, 4, 6)]


class BestSetCandidateTest(fakes.TestCase):

    def setUp(self):
        super(BestSetCandidateTest, self).setUp()
        self.flags(group='filter_scheduler', pci_in_placement=True)
        self.filt = gpu_filter.GPUPassthroughFilter()

    def hgx(self, flavor, busy=(), keep=None):
        """The HGX host with only the candidates ``keep`` picks."""
        state = fakes.host_state('hgx', fakes.fake_gpus.eight_gpu_host(),
                                 busy=busy, in_placement=True)
        spec = fakes.request_spec(flavor)
        every = fakes.candidates(state, spec)
        state.allocation_candidates = [c for c in every
                                       if keep is None or keep(state, c)]
        return state, spec

    def passes(self, state, spec):
        return list(nova_filters.HostFilterHandler().get_filtered_objects(
            [self.filt], [state], spec)) == [state]

    def test_cross_numa_candidate_replaced_by_switch_pair(self):
        """Placement offers only 18+ab (two NUMA nodes): 18+2a is built.

        The built candidate keeps the root allocation, holds exactly the
        two GPUs' providers with one unit each, and Placement's own
        candidate stays behind it as a fallback.
        """
        offered = {'0000:18:00.0', '0000:ab:00.0'}
        state, spec = self.hgx(fakes.flavor('h100:2'), keep=lambda s, c: set(
            fakes.candidate_addresses(s, c)) == offered)
        self.assertEqual(2, len(state.allocation_candidates))
        root = dict(state.allocation_candidates[0]['allocations']['root-rp'])

        self.assertTrue(self.passes(state, spec))

        built, fallback = state.allocation_candidates[0], \
            state.allocation_candidates[-1]
        self.assertEqual(['0000:18:00.0', '0000:2a:00.0'],
                         fakes.candidate_addresses(state, built))
        self.assertEqual(offered,
                         set(fakes.candidate_addresses(state, fallback)))
        providers = {state.providers[a] for a in PAIRS[0]}
        self.assertEqual(providers | {'root-rp'}, set(built['allocations']))
        self.assertEqual(root, built['allocations']['root-rp'])
        for rp in providers:
            self.assertEqual({'resources': {fakes.RESOURCE_CLASS: 1}},
                             built['allocations'][rp])

    def test_best_fit_single_gpu_takes_the_busy_gpus_mate(self):
        """18 busy; Placement offers db only: 2a (18's mate) is built."""
        state, spec = self.hgx(
            fakes.flavor('h100:1'), busy=['0000:18:00.0'],
            keep=lambda s, c: fakes.candidate_addresses(s, c) == [
                '0000:db:00.0'])

        self.assertTrue(self.passes(state, spec))

        self.assertEqual(['0000:2a:00.0'], fakes.candidate_addresses(
            state, state.allocation_candidates[0]))

    def test_option_off_keeps_placements_choice(self):
        self.flags(claim_best_set=False)
        state, spec = self.hgx(
            fakes.flavor('h100:1'), busy=['0000:18:00.0'],
            keep=lambda s, c: fakes.candidate_addresses(s, c) == [
                '0000:db:00.0'])

        self.assertTrue(self.passes(state, spec))

        self.assertEqual([['0000:db:00.0']], [
            fakes.candidate_addresses(state, c)
            for c in state.allocation_candidates])

    def test_best_candidate_already_returned_nothing_built(self):
        """Every ordering returned: the filter only reorders (56 stay)."""
        state, spec = self.hgx(fakes.flavor('h100:2'))

        self.assertTrue(self.passes(state, spec))

        self.assertEqual(56, len(state.allocation_candidates))

    def test_a_gpu_placement_has_no_room_on_is_never_built(self):
        """2a busy, its switch mate 18 held (reserved) in Placement.

        Best fit would build 18 (the busy GPU's mate, as in the test
        above), and the pools still show it free; but Placement named
        every GPU it has room on, one candidate each, and 18 is not among
        them: the list is complete, nothing is built.
        """
        held = '0000:18:00.0'
        state, spec = self.hgx(
            fakes.flavor('h100:1'), busy=['0000:2a:00.0'],
            keep=lambda s, c: fakes.candidate_addresses(s, c) != [held])
        self.assertEqual(6, len(state.allocation_candidates))

        self.assertTrue(self.passes(state, spec))

        claimed = [fakes.candidate_addresses(state, candidate)
                   for candidate in state.allocation_candidates]
        self.assertEqual(6, len(claimed))
        self.assertNotIn([held], claimed)

    def test_names_every_set(self):
        state, spec = self.hgx(fakes.flavor('h100:2'))
        ids = [request.request_id
               for request in spec.pci_requests.requests]
        every = state.allocation_candidates
        self.assertTrue(candidates.names_every_set(every, ids))
        # One candidate (a cut list at scale) says nothing.
        self.assertFalse(candidates.names_every_set(every[:1], ids))
        # Both orderings of one pair missing, its GPUs in other pairs: cut.
        pair = set(fakes.candidate_addresses(state, every[0]))
        cut = [c for c in every
               if set(fakes.candidate_addresses(state, c)) != pair]
        self.assertEqual(54, len(cut))
        self.assertFalse(candidates.names_every_set(cut, ids))
        self.assertFalse(candidates.names_every_set([], ids))

    def test_provider_of_another_kind_is_never_used(self):
        """2a is of unproven isolation, so another trait: not used.

        Isolation ``any`` makes 2a, the mate of busy 18, the best set; but
        the agent gives an unproven GPU other traits than the isolated db
        that Placement offered, so the group cannot move to 2a: the set
        built is the best among isolated GPUs (a whole-switch break is
        the least harm: 2a's pair is the only one with one free GPU).
        """
        self.flags(default_isolation='any')
        gpus = [FakeGPU(g.address, numa_node=g.numa_node, switch=g.switch,
                        isolation='unknown' if g.address == '0000:2a:00.0'
                        else None)
                for g in fakes.fake_gpus.eight_gpu_host()]
        state = fakes.host_state('hgx', gpus, busy=['0000:18:00.0'],
                                 in_placement=True)
        spec = fakes.request_spec(fakes.flavor('h100:1'))
        state.allocation_candidates = [
            c for c in fakes.candidates(state, spec)
            if fakes.candidate_addresses(state, c) == ['0000:db:00.0']]

        self.assertTrue(self.passes(state, spec))

        chosen = [fakes.candidate_addresses(state, c)
                  for c in state.allocation_candidates]
        self.assertNotIn(['0000:2a:00.0'], chosen)
        kinds = host_view.build_host_facts(
            state, self.conf.conf.gpu_passthrough).rp_kinds
        self.assertEqual({kinds[state.providers['0000:db:00.0']]},
                         {kinds[state.providers[c[0]]] for c in chosen})

    def test_untagged_provider_never_serves_a_traited_group(self):
        """A group asking a custom trait moves only to tagged providers."""
        state, spec = self.hgx(
            fakes.flavor('h100:1'), busy=['0000:18:00.0'],
            keep=lambda s, c: fakes.candidate_addresses(s, c) == [
                '0000:db:00.0'])
        facts = host_view.build_host_facts(
            state, self.conf.conf.gpu_passthrough)
        request, request_ids = request_view.cached_request_facts(
            spec, self.conf.conf.gpu_passthrough).for_host(
                facts, frozenset(), state.allocation_candidates)
        template = state.allocation_candidates[0]
        group = next(g for g in template['mappings'] if g)
        untagged = {rp: kind[:2] + (None,)
                    for rp, kind in facts.rp_kinds.items()}
        vouched = candidates.vouched_kinds([template], request_ids,
                                           untagged)
        args = (template, {'0000:2a:00.0'}, request, request_ids, facts,
                untagged, vouched)

        self.assertIsNone(candidates.candidate_for_set(
            *args, group_traits={group: {'CUSTOM_GPU_H100'}}))
        built = candidates.candidate_for_set(
            *args, group_traits={group: {candidates.MANAGED_TRAIT}})
        self.assertEqual(['0000:2a:00.0'],
                         fakes.candidate_addresses(state, built))

    def test_two_aliases_each_group_gets_its_model(self):
        """h100:1 + a100:1 on a mixed host: groups keep their model."""
        gpus = [FakeGPU('0000:81:00.0', numa_node=0),
                FakeGPU('0000:82:00.0', numa_node=0,
                        model=fakes.fake_gpus.A100),
                FakeGPU('0000:c1:00.0', numa_node=1),
                FakeGPU('0000:c2:00.0', numa_node=1,
                        model=fakes.fake_gpus.A100)]
        state = fakes.host_state('mixed', gpus, in_placement=True)
        spec = fakes.request_spec(fakes.flavor('h100:1,a100:1'))
        every = fakes.candidates(state, spec)
        # Placement's only candidate: one GPU from each NUMA node.
        state.allocation_candidates = [
            c for c in every if fakes.candidate_addresses(state, c) == [
                '0000:81:00.0', '0000:c2:00.0']]

        self.assertTrue(self.passes(state, spec))

        built = state.allocation_candidates[0]
        models = {r.request_id: r.spec[0]['product_id']
                  for r in spec.pci_requests.requests}
        for group, (rp,) in built['mappings'].items():
            if group:
                address = fakes.address_of(state, rp)
                gpu = next(g for g in gpus if g.address == address)
                self.assertEqual(models[candidates.request_of(group)],
                                 gpu.model.product_id)
        self.assertEqual(1, len({fakes.address_of(state, rps[0])[:6]
                                 for g, rps in built['mappings'].items()
                                 if g}))

    @settings(max_examples=40, deadline=None)
    @given(count=st.sampled_from([1, 2, 4]),
           busy=st.sets(st.sampled_from(fakes.fake_gpus.HGX_ADDRESSES),
                        max_size=4),
           pick=st.integers(min_value=0))
    def test_any_single_candidate_yields_the_best_set(self, count, busy,
                                                      pick):
        """Whatever one candidate Placement returns, none better is first.

        First is the better of Placement's candidate and the core's best
        set (the core's search does not always find the top quality; it
        is never swapped for a worse one). And the built candidate is a
        valid claim: the root's allocation, one unit on each GPU provider
        of the set, each GPU group mapped to one of them, no provider
        twice.
        """
        state, spec = self.hgx(fakes.flavor('h100:%d' % count),
                               busy=sorted(busy))
        every = state.allocation_candidates
        if not every:
            return
        state.allocation_candidates = [every[pick % len(every)]]
        facts = host_view.build_host_facts(state, self.conf.conf.
                                           gpu_passthrough)
        request, _ = request_view.cached_request_facts(
            spec, self.conf.conf.gpu_passthrough).for_host(
                facts, frozenset(), state.allocation_candidates)
        best = feasibility.best_set(facts.index, request).best

        self.assertTrue(self.passes(state, spec))

        first = state.allocation_candidates[0]
        addresses = fakes.candidate_addresses(state, first)
        quality = feasibility.evaluate_set(facts.index, request,
                                           addresses).quality
        offered = feasibility.evaluate_set(
            facts.index, request, fakes.candidate_addresses(
                state, every[pick % len(every)])).quality
        self.assertEqual(max(best.quality, offered), quality)
        gpu_rps = {state.providers[a] for a in addresses}
        self.assertEqual(gpu_rps | {'root-rp'}, set(first['allocations']))
        mapped = [rps[0] for g, rps in first['mappings'].items() if g]
        self.assertEqual(sorted(gpu_rps), sorted(mapped))
