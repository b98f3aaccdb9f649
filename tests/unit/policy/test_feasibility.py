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
"""GPU-set feasibility on named host shapes; docstrings name the winner."""

import fixtures
from oslotest import base
import testscenarios

from gpu_passthrough_filter.policy import feasibility
from gpu_passthrough_filter.policy import host_index
from gpu_passthrough_filter.policy import matching
from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter.policy import reservation
from tests.unit.policy import shapes
from tests.unit.policy.shapes import addr

STRICT = model.Isolation.STRICT
ANY = model.Isolation.ANY
REQUIRED = model.NumaAffinity.REQUIRED
NONE = model.NumaAffinity.NONE
SWITCH = model.Locality.SWITCH
NUMA = model.Locality.NUMA


def slots(*numbers):
    return frozenset(addr(n) for n in numbers)


class BestSetTest(base.BaseTestCase):
    """Which set :func:`best_set` picks, shape by shape."""

    def best(self, host, req):
        fit = feasibility.best_set(host, req)
        self.assertTrue(fit.ok, fit.reason)
        self.assertEqual(1, len(fit.sets))
        return fit.best

    def test_dgx_two_gpus_one_switch(self):
        """dgx, 2 GPUs: a whole switch (sw0: slots 0-1), SWITCH level."""
        best = self.best(shapes.dgx_8gpu(), shapes.request(2))
        self.assertEqual(slots(0, 1), best.addresses)
        self.assertEqual(feasibility.SetLocality.SWITCH, best.level)
        self.assertEqual(0, best.numa_node)

    def test_dgx_four_gpus_one_numa_node(self):
        """dgx, 4 GPUs: a whole NUMA node (slots 0-3), not 2+2 across."""
        best = self.best(shapes.dgx_8gpu(), shapes.request(4))
        self.assertEqual(slots(0, 1, 2, 3), best.addresses)
        self.assertEqual(feasibility.SetLocality.NUMA, best.level)

    def test_dgx_eight_gpus_whole_host(self):
        """dgx, 8 GPUs: the whole host, breaking no block."""
        best = self.best(shapes.dgx_8gpu(), shapes.request(8))
        self.assertEqual(slots(*range(8)), best.addresses)
        self.assertEqual(0, best.broken)
        self.assertEqual(feasibility.SetLocality.CROSS, best.level)

    def test_one_gpu_goes_to_the_broken_switch(self):
        """dgx with slot 4 busy, 1 GPU: slot 5, the rest of broken sw2."""
        host = shapes.occupy(shapes.dgx_8gpu(), 4)
        self.assertEqual(slots(5), self.best(host, shapes.request(1))
                         .addresses)

    def test_two_gpus_fill_the_broken_numa_node(self):
        """Slots 1+3 win: fill the broken NUMA 0, keep NUMA 1 whole.

        dgx with slots 0 and 2 busy, 2 GPUs, switch not required: not a
        whole switch of the fully free NUMA 1.
        """
        host = shapes.occupy(shapes.dgx_8gpu(), 0, 2)
        best = self.best(host, shapes.request(2))
        self.assertEqual(slots(1, 3), best.addresses)
        self.assertEqual(feasibility.SetLocality.NUMA, best.level)

    def test_two_gpus_with_switch_locality_take_the_free_switch(self):
        """Slots 4-5 (sw2) win for locality=switch on a dgx missing 0 and 2.

        sw2 and sw3 are the only switches with two free GPUs; sw2 comes
        first.
        """
        host = shapes.occupy(shapes.dgx_8gpu(), 0, 2)
        best = self.best(host, shapes.request(2, locality=SWITCH))
        self.assertEqual(slots(4, 5), best.addresses)

    def test_dual_socket_two_gpus_same_socket(self):
        """dual-socket 4-GPU, 2 GPUs: slots 0-1 (NUMA 0), NUMA level."""
        best = self.best(shapes.dual_socket_4gpu(), shapes.request(2))
        self.assertEqual(slots(0, 1), best.addresses)
        self.assertEqual(feasibility.SetLocality.NUMA, best.level)

    def test_dual_socket_preferred_numa_falls_back_across(self):
        """Slots 1+3 across sockets: numa preferred falls back.

        dual-socket with slots 0 and 2 busy has no one-node pair left.
        """
        host = shapes.occupy(shapes.dual_socket_4gpu(), 0, 2)
        best = self.best(host, shapes.request(2))
        self.assertEqual(slots(1, 3), best.addresses)
        self.assertEqual(feasibility.SetLocality.CROSS, best.level)
        self.assertIsNone(best.numa_node)

    def test_root_port_host_four_gpus_one_numa(self):
        """8 GPUs without switches, 4 GPUs: NUMA 0 (slots 0-3)."""
        best = self.best(shapes.root_port_8gpu(), shapes.request(4))
        self.assertEqual(slots(0, 1, 2, 3), best.addresses)

    def test_shared_pairs_strict_take_whole_groups(self):
        """pairs8, 2 GPUs strict: group g0 (slots 0-1), one whole group."""
        best = self.best(shapes.shared_pairs_8gpu(), shapes.request(2))
        self.assertEqual(slots(0, 1), best.addresses)
        self.assertEqual(0, best.stranded)

    def test_shared_pairs_strict_four_gpus(self):
        """pairs8, 4 GPUs strict: groups g0+g1 (NUMA 0)."""
        best = self.best(shapes.shared_pairs_8gpu(), shapes.request(4))
        self.assertEqual(slots(0, 1, 2, 3), best.addresses)

    def test_one_gpu_any_isolation_avoids_half_a_shared_group(self):
        """An isolated GPU wins over half of a shared group (mixed4, any).

        Taking slot 2 or 3 would strand its group mate.
        """
        best = self.best(shapes.mixed_4gpu(),
                         shapes.request(1, isolation=ANY))
        self.assertIn(best.addresses, (slots(0), slots(1)))
        self.assertEqual(0, best.stranded)

    def test_one_gpu_any_isolation_half_group_strands_its_mate(self):
        """Half of the only shared pair fits (any), stranding one GPU."""
        best = self.best(shapes.one_shared_pair(),
                         shapes.request(1, isolation=ANY))
        self.assertEqual(1, best.stranded)

    def test_two_gpus_strict_take_the_shared_pair_not_two_singles(self):
        """Slots 2+3 (a whole shared group) win over isolated 0+1.

        All four sit under sw0 on NUMA 0: the pair serves only guests
        that take it whole, the single GPUs serve 1-GPU guests too.
        """
        host = model.HostView('h', (
            shapes.gpu(0, 0, 'sw0'), shapes.gpu(1, 0, 'sw0'),
            shapes.gpu(2, 0, 'sw0', group='gp', isolation='shared'),
            shapes.gpu(3, 0, 'sw0', group='gp', isolation='shared')))
        self.assertEqual(slots(2, 3),
                         self.best(host, shapes.request(2)).addresses)

    def test_two_aliases_are_one_set(self):
        """Two aliases (2 A100 + 2 H100) on twomodel: one set of 4.

        The set holds two GPUs of each model.
        """
        req = model.GPURequest((
            model.GPUDemand(2, frozenset([shapes.A100])),
            model.GPUDemand(2, frozenset([shapes.H100]))))
        best = self.best(shapes.two_model_8gpu(), req)
        self.assertEqual(4, len(best))
        models = sorted(shapes.two_model_8gpu().gpus[int(a[5:7], 16) - 0x10]
                        .model for a in best.addresses)
        self.assertEqual([shapes.A100] * 2 + [shapes.H100] * 2, models)

    def test_model_filter(self):
        """twomodel, 2 H100: a whole H100 switch on NUMA 1 (slots 4-5)."""
        best = self.best(shapes.two_model_8gpu(), shapes.request(2))
        self.assertEqual(slots(4, 5), best.addresses)

    def test_no_gpu_requested_fits_with_no_set(self):
        """A request without GPUs fits any host and gets no set."""
        fit = feasibility.find_sets(shapes.dgx_8gpu(), shapes.request(0))
        self.assertTrue(fit.ok)
        self.assertIsNone(fit.best)


#: Hosts that cannot serve a request: (name, host, request, what the
#: reason must say). Each reason names the numbers behind the refusal.
REJECTIONS = [
    ('four_gpus_under_one_switch_on_dgx', shapes.dgx_8gpu,
     lambda: shapes.request(4, locality=SWITCH),
     ['needs 4 GPUs of 10de:2330 under one switch; largest usable switch '
      'block is 2 (8 free GPUs, 0 in shared groups)']),
    ('unknown_isolation_under_strict', shapes.unknown_4gpu,
     lambda: shapes.request(1),
     ['0 usable under strict isolation', '4 of unknown isolation']),
    ('half_a_group_under_strict', shapes.one_shared_pair,
     lambda: shapes.request(1),
     ['no exact combination of whole IOMMU groups']),
    ('busy_group_mate_under_any',
     lambda: shapes.occupy(shapes.one_shared_pair(), 0),
     lambda: shapes.request(1, isolation=ANY),
     ['1 with a busy IOMMU group mate']),
    ('numa_required_across_sockets',
     lambda: shapes.occupy(shapes.dual_socket_4gpu(), 0, 2),
     lambda: shapes.request(2, numa=REQUIRED),
     ['on one NUMA node; largest usable NUMA node block is 1']),
    ('unknown_numa_under_required',
     lambda: model.HostView('h', (shapes.gpu(0, None, 'sw0'),)),
     lambda: shapes.request(1, numa=REQUIRED), ['NUMA node']),
    ('no_switch_is_never_the_same_switch', shapes.root_port_8gpu,
     lambda: shapes.request(2, locality=SWITCH), ['under one switch']),
    ('wrong_model', shapes.dgx_8gpu,
     lambda: shapes.request(1, models=[shapes.A100]),
     ['needs 1 GPU of 10de:20b5; 0 usable']),
]


class RejectionTest(testscenarios.WithScenarios, base.BaseTestCase):
    """Every row of :data:`REJECTIONS`: no set, and the reason says why."""

    scenarios = [(name, dict(host=host, req=req, says=says))
                 for name, host, req, says in REJECTIONS]

    def test_rejected_with_its_reason(self):
        fit = feasibility.find_sets(self.host(), self.req())
        self.assertFalse(fit.ok)
        self.assertFalse(fit)
        self.assertEqual((), fit.sets)
        for words in self.says:
            self.assertIn(words, fit.reason)


class AcceptedUnderAnyTest(base.BaseTestCase):

    def test_unknown_isolation_is_fine_under_any(self):
        """unknown4, isolation any: 2 GPUs fit."""
        fit = feasibility.best_set(shapes.unknown_4gpu(),
                                   shapes.request(2, isolation=ANY))
        self.assertTrue(fit.ok, fit.reason)


class UsableGPUsTest(base.BaseTestCase):
    """HostIndex.usable_for: what each isolation policy may give."""

    def addresses(self, host, req):
        return set(host_index.HostIndex(host).usable_for(req.isolation))

    def test_strict_excludes_unknown_and_busy_groups(self):
        """Busy slot 2 blocks its group mate slot 3; unknown refused."""
        host = model.HostView('h', (
            shapes.gpu(0, 0, 'sw0'),
            shapes.gpu(1, 0, 'sw0', isolation='unknown'),
            shapes.gpu(2, 1, 'sw1', group='gp', isolation='shared',
                       free=False),
            shapes.gpu(3, 1, 'sw1', group='gp', isolation='shared'),
            shapes.gpu(4, 1, 'sw1', group='gq', isolation='shared'),
            shapes.gpu(5, 1, 'sw1', group='gq', isolation='shared'),
        ))
        self.assertEqual(slots(0, 4, 5),
                         self.addresses(host, shapes.request(1)))
        self.assertEqual(slots(0, 1, 4, 5), self.addresses(
            host, shapes.request(1, isolation=ANY)))

    def test_shared_gpu_without_group_is_refused_under_strict(self):
        """A shared GPU whose group is unknown cannot be taken whole."""
        host = model.HostView('h', (
            model.GPUView(addr(0), shapes.H100, 0, None, 'shared', 'sw0'),
            model.GPUView(addr(1), shapes.H100, 0, None, 'isolated', 'sw0')))
        self.assertEqual(slots(1), self.addresses(host, shapes.request(1)))


class EvaluateSetTest(base.BaseTestCase):
    """evaluate_set on concrete sets (Placement allocation candidates)."""

    def setUp(self):
        super(EvaluateSetTest, self).setUp()
        self.index = host_index.HostIndex(shapes.dgx_8gpu())

    def evaluate(self, req, *numbers):
        return feasibility.evaluate_set(self.index, req,
                                        [addr(n) for n in numbers])

    def test_same_switch_beats_cross_numa(self):
        """dgx, 2 GPUs: slots 0+1 (sw0) rank above 0+4 (across NUMA)."""
        req = shapes.request(2)
        same = self.evaluate(req, 0, 1)
        cross = self.evaluate(req, 0, 4)
        self.assertTrue(same.ok and cross.ok)
        self.assertGreater(same.quality, cross.quality)

    def test_quality_matches_find_sets(self):
        """The best set's quality is the one evaluate_set reports."""
        req = shapes.request(2)
        best = feasibility.best_set(self.index, req).best
        ok, reason, quality, gpu_set = feasibility.evaluate_set(
            self.index, req, best.addresses)
        self.assertEqual(best, gpu_set)
        self.assertTrue(ok, reason)
        self.assertEqual(best.quality, quality)

    def test_locality_switch_refuses_two_switches(self):
        """locality=switch: slots 0+2 (sw0, sw1) refused with reason."""
        result = self.evaluate(shapes.request(2, locality=SWITCH), 0, 2)
        self.assertFalse(result.ok)
        self.assertIn('locality=switch', result.reason)
        self.assertEqual(0.0, result.quality)

    def test_numa_locality_refuses_cross_numa(self):
        """locality=numa: slots 0+4 refused."""
        self.assertFalse(self.evaluate(shapes.request(2, locality=NUMA),
                                       0, 4).ok)

    def test_wrong_count_and_foreign_and_busy(self):
        """Too few GPUs, an unknown address and a busy GPU are refused."""
        req = shapes.request(2)
        self.assertIn('needs 2', self.evaluate(req, 0).reason)
        bad = feasibility.evaluate_set(self.index, req,
                                       [addr(0), '0000:ff:00.0'])
        self.assertIn('not GPUs of this host', bad.reason)
        busy = host_index.HostIndex(shapes.occupy(shapes.dgx_8gpu(), 1))
        self.assertIn('not usable', feasibility.evaluate_set(
            busy, req, [addr(0), addr(1)]).reason)

    def test_strict_needs_whole_group(self):
        """Strict, pairs8: 1+2 (halves of g0, g1) refused, 0+1 accepted."""
        idx = host_index.HostIndex(shapes.shared_pairs_8gpu())
        req = shapes.request(2)
        half = feasibility.evaluate_set(idx, req, [addr(1), addr(2)])
        self.assertFalse(half.ok)
        self.assertIn('whole IOMMU groups', half.reason)
        self.assertTrue(feasibility.evaluate_set(
            idx, req, [addr(0), addr(1)]).ok)

    def test_host_view_accepted(self):
        """A HostView works as well as an index."""
        self.assertTrue(feasibility.evaluate_set(
            shapes.dgx_8gpu(), shapes.request(1), [addr(3)]).ok)


class TopologyScoreTest(base.BaseTestCase):

    @staticmethod
    def pair_level(first, second):
        """The rule for two GPUs: same known switch, same known node."""
        level = feasibility.SetLocality
        if first.switch is not None and first.switch == second.switch:
            return level.SWITCH
        if first.numa_node is not None and \
                first.numa_node == second.numa_node:
            return level.NUMA
        return level.CROSS

    def test_set_level_is_weakest_pair(self):
        """set_level equals the weakest pair of the set."""
        g = shapes.dgx_8gpu().gpus
        unknown = shapes.gpu(9, None, None)
        for gpus in ([g[0], g[1]], [g[0], g[1], g[2]], [g[0], g[5]],
                     [g[2], g[3]], [g[0], unknown]):
            weakest = min(self.pair_level(a, b)
                          for a in gpus for b in gpus if a is not b)
            self.assertEqual(weakest, feasibility.set_level(gpus))


class AssignableTest(base.BaseTestCase):

    def test_reassigns_between_aliases(self):
        """An H100 moves to the demand that accepts it, freeing an A100 slot.

        Demands {A or H}:1 and {A}:1 take one A100 and one H100 only if
        the H100 goes to the first demand.
        """
        demands = (model.GPUDemand(1, frozenset([shapes.A100, shapes.H100])),
                   model.GPUDemand(1, frozenset([shapes.A100])))
        self.assertTrue(matching.assignable(
            {shapes.A100: 1, shapes.H100: 1}, demands))
        self.assertFalse(matching.assignable({shapes.H100: 2}, demands))
        self.assertFalse(matching.assignable({shapes.A100: 3}, demands))


class HostIndexTest(base.BaseTestCase):

    def test_counts_per_block(self):
        """dgx with slot 0 busy: sw0 has 1 of 2 free, NUMA 0 3 of 4."""
        idx = host_index.HostIndex(shapes.occupy(shapes.dgx_8gpu(), 0))
        self.assertEqual((1, 2), (idx.switch_free['sw0'],
                                  idx.switch_total['sw0']))
        self.assertEqual((3, 4), (idx.numa_free[0], idx.numa_total[0]))
        self.assertEqual((2, 2), (idx.switch_free['sw1'],
                                  idx.switch_total['sw1']))
        self.assertFalse(idx.host_fully_free)
        self.assertEqual((7, 8), (idx.free, idx.total))

    def test_results_are_cached_per_request(self):
        """The same request on one index returns the same Fit object."""
        idx = host_index.HostIndex(shapes.dgx_8gpu())
        req = shapes.request(2)
        self.assertIs(feasibility.find_sets(idx, req),
                      feasibility.find_sets(idx, req))

    def test_tag_spellings_of_unknown_are_normalised(self):
        """Switch "none" and NUMA node -1 (tag spellings) mean unknown."""
        host = model.HostView('h', (
            shapes.gpu(0, -1, 'none'), shapes.gpu(1, -1, 'none')))
        idx = host_index.HostIndex(host)
        self.assertEqual({None}, {g.switch for g in idx.gpus.values()})
        self.assertEqual({None}, {g.numa_node for g in idx.gpus.values()})
        self.assertFalse(feasibility.best_set(
            idx, shapes.request(2, locality=SWITCH)).ok)


class GPUReserveTest(base.BaseTestCase):
    """keeps_gpu_reserve: (host, request, reserve, expected ok)."""

    def test_cases(self):
        dgx = shapes.with_resources(shapes.dgx_8gpu(), 100, 10 ** 6)
        half = shapes.occupy(dgx, 0, 1, 2, 3)
        unknown = shapes.dgx_8gpu()
        plain = shapes.request(0, vcpus=8, ram_mb=1024)
        cases = [
            ('4 left for 8 GPUs x 12', dgx, plain, (12, 0), False),
            ('52 left for 4 GPUs x 12', half, plain, (12, 0), True),
            ('exactly the reserve', half, shapes.request(0, vcpus=52),
             (12, 0), True),
            ('one vCPU short', half, shapes.request(0, vcpus=53), (12, 0),
             False),
            ('RAM short', half, plain, (0, 250000), False),
            ('no reserve', dgx, plain, (0, 0), True),
            ('free figures unknown', unknown, plain, (12, 1024), True),
            ('no free GPU', shapes.occupy(dgx, *range(8)), plain, (12, 0),
             True),
            ('guests with GPUs are not judged', dgx,
             shapes.request(1, vcpus=99), (12, 0), True),
        ]
        for name, host, request, reserve, expected in cases:
            ok, reason = reservation.keeps_gpu_reserve(host, request,
                                                       *reserve)
            self.assertEqual(expected, ok, name)
            self.assertEqual(ok, not reason, name)


class LearnedShareTest(base.BaseTestCase):
    """LearnedShare: vCPUs and RAM per GPU of the recent GPU guests."""

    def test_cold_and_plain_guests_learn_nothing(self):
        share = reservation.LearnedShare()
        self.assertEqual((0.0, 0.0), share.per_gpu())
        share.observe(shapes.request(0, vcpus=64, ram_mb=10 ** 6))
        self.assertEqual((0.0, 0.0), share.per_gpu())

    def test_mean_is_weighted_by_gpus(self):
        """An 8-GPU guest counts as eight GPUs' worth, not one guest."""
        share = reservation.LearnedShare()
        share.observe(shapes.request(8, vcpus=96, ram_mb=8 * 1000))
        share.observe(shapes.request(1, vcpus=24, ram_mb=1000))
        self.assertEqual((120 / 9, 1000.0), share.per_gpu())

    def test_the_window_forgets_the_oldest(self):
        share = reservation.LearnedShare(window=2)
        share.observe(shapes.request(1, vcpus=100, ram_mb=100))
        share.observe(shapes.request(1, vcpus=10, ram_mb=10))
        share.observe(shapes.request(1, vcpus=20, ram_mb=30))
        self.assertEqual((15.0, 20.0), share.per_gpu())

    def test_reserve_per_gpu(self):
        share = reservation.LearnedShare()
        self.assertEqual((0.0, 0.0),
                         reservation.reserve_per_gpu(0, 0, 0.5, share))
        share.observe(shapes.request(2, vcpus=24, ram_mb=4096))
        cases = [
            ('half the learned figures', (0, 0, 0.5), (6.0, 1024.0)),
            ('no share, no reserve', (0, 0, 0.0), (0.0, 0.0)),
            ('an explicit figure wins', (3, 0, 0.5), (3.0, 1024.0)),
            ('each figure on its own', (0, 512, 1.0), (12.0, 512.0)),
        ]
        for name, args, expected in cases:
            self.assertEqual(
                expected, reservation.reserve_per_gpu(*args, learned=share),
                name)


class SearchBudgetTest(base.BaseTestCase):
    """A search cut short says so, and the scope counts as not fitting."""

    def setUp(self):
        super().setUp()
        # One shared IOMMU group holding an A100 and an H100: neither
        # alias alone accepts it, so only the exact search finds it.
        self.host = model.HostView('mixed', (
            shapes.gpu(0, 0, 'sw0', group='gp', isolation='shared',
                       gpu_model=shapes.A100),
            shapes.gpu(1, 0, 'sw0', group='gp', isolation='shared',
                       gpu_model=shapes.H100)))
        self.request = model.GPURequest((
            model.GPUDemand(1, frozenset([shapes.A100])),
            model.GPUDemand(1, frozenset([shapes.H100]))))
        self.log = self.useFixture(fixtures.FakeLogger(
            name=feasibility.__name__))

    def test_the_search_finds_the_mixed_group(self):
        fit = feasibility.best_set(self.host, self.request)
        self.assertTrue(fit.ok, fit.reason)
        self.assertEqual(slots(0, 1), fit.best.addresses)
        self.assertEqual('', self.log.output)

    def test_a_search_out_of_steps_is_logged(self):
        self.useFixture(fixtures.MockPatchObject(
            feasibility, '_SEARCH_BUDGET', 0))
        fit = feasibility.best_set(self.host, self.request)
        self.assertFalse(fit.ok)
        self.assertIn('GPU-set search stopped after 0 steps over 1 IOMMU '
                      'groups or GPUs for 1 x 10de:20b5 + 1 x 10de:2330',
                      self.log.output)
