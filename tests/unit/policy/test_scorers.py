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
"""Scorers on named hosts; each docstring names the winning host."""

from oslotest import base
import stevedore

from gpu_passthrough_filter.policy import feasibility
from gpu_passthrough_filter.policy import host_index
from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter.policy import scorers
from tests.unit.policy import shapes
from tests.unit.policy.shapes import addr


def score(scorer, host, req):
    """Score ``host`` the way the weigher does: best set, then scorer."""
    idx = host_index.HostIndex(host)
    return scorer(idx, req, feasibility.best_set(idx, req).best)


class BestFitTest(base.BaseTestCase):

    def test_half_full_host_wins(self):
        """1 GPU: the half-full dgx beats the empty dgx."""
        req = shapes.request(1)
        half = shapes.occupy(shapes.dgx_8gpu(), 0, 1, 2, 3)
        self.assertGreater(score(scorers.best_fit, half, req),
                           score(scorers.best_fit, shapes.dgx_8gpu(), req))

    def test_exact_fill_scores_one(self):
        """4 GPUs on a dgx with 4 free: nothing left, 1.0."""
        host = shapes.occupy(shapes.dgx_8gpu(), 4, 5, 6, 7)
        self.assertEqual(1.0, score(scorers.best_fit, host,
                                    shapes.request(4)))

    def test_only_matching_models_count(self):
        """1 H100 on twomodel: 3 H100 left (A100s do not count): 0.25."""
        self.assertEqual(0.25, score(scorers.best_fit,
                                     shapes.two_model_8gpu(),
                                     shapes.request(1)))

    def test_neutral_without_gpus(self):
        """A plain VM: best_fit is 0.0 on every host."""
        for host in (shapes.dgx_8gpu(), shapes.cpu_only()):
            self.assertEqual(scorers.NEUTRAL,
                             score(scorers.best_fit, host,
                                   shapes.request(0)))


class LocalityScorerTest(base.BaseTestCase):

    def test_switch_beats_numa_beats_cross(self):
        """2 GPUs: dgx (switch, 1.0) > dual-socket (NUMA, 0.5) > across.

        The last is a dual-socket host with one GPU busy per node.
        """
        req = shapes.request(2)
        dgx = score(scorers.locality, shapes.dgx_8gpu(), req)
        dual = score(scorers.locality, shapes.dual_socket_4gpu(), req)
        cross = score(scorers.locality,
                      shapes.occupy(shapes.dual_socket_4gpu(), 0, 2), req)
        self.assertEqual((1.0, 0.5, 0.0), (dgx, dual, cross))

    def test_single_gpu_known_numa_wins(self):
        """1 GPU: a GPU with a known NUMA node beats an unknown one."""
        known = shapes.one_isolated()
        unknown = model.HostView('u', (shapes.gpu(0, None, 'sw0'),))
        req = shapes.request(1)
        self.assertEqual(1.0, score(scorers.locality, known, req))
        self.assertEqual(0.0, score(scorers.locality, unknown, req))


class FragmentationTest(base.BaseTestCase):

    def test_one_gpu_goes_to_the_broken_switch(self):
        """1 GPU goes to the already broken switch, not a whole free one.

        The dgx whose sw0 is broken (slot 0 busy) beats the fully free
        dgx, and on it the set is slot 1.
        """
        req = shapes.request(1)
        broken = shapes.occupy(shapes.dgx_8gpu(), 0)
        self.assertGreater(
            score(scorers.fragmentation, broken, req),
            score(scorers.fragmentation, shapes.dgx_8gpu(), req))
        self.assertEqual(1.0, score(scorers.fragmentation, broken, req))
        self.assertEqual(frozenset([addr(1)]),
                         feasibility.best_set(broken, req).best.addresses)

    def test_taking_a_whole_free_block_breaks_nothing(self):
        """4 GPUs: the half-busy dgx wins, its free NUMA node taken whole.

        The free dgx would lose its whole free host.
        """
        req = shapes.request(4)
        half = shapes.occupy(shapes.dgx_8gpu(), 0, 1, 2, 3)
        self.assertEqual(1.0, score(scorers.fragmentation, half, req))
        self.assertLess(score(scorers.fragmentation, shapes.dgx_8gpu(), req),
                        1.0)

    def test_small_host_beats_big_free_host_for_one_gpu(self):
        """1 GPU: a free dual-socket 4-GPU host beats a free dgx.

        Less aligned capacity is broken on the small host.
        """
        req = shapes.request(1)
        self.assertGreater(
            score(scorers.fragmentation, shapes.dual_socket_4gpu(), req),
            score(scorers.fragmentation, shapes.dgx_8gpu(), req))

    def test_stranding_half_a_group_loses(self):
        """1 GPU (any): the isolated-GPU host beats the shared-pair host.

        On the latter the only choice is half of a shared pair.
        """
        req = shapes.request(1, isolation=model.Isolation.ANY)
        self.assertGreater(
            score(scorers.fragmentation, shapes.one_isolated(), req),
            score(scorers.fragmentation, shapes.one_shared_pair(), req))


class GPUHostReserveTest(base.BaseTestCase):

    def gpu_host(self, free_vcpus=128, busy=()):
        host = shapes.occupy(shapes.dgx_8gpu(), *busy)
        return shapes.with_resources(host, free_vcpus, 1024 * 1024, 128,
                                     1024 * 1024)

    def test_plain_vm_avoids_the_gpu_host(self):
        """A plain VM: the CPU-only host (1.0) beats the free dgx."""
        req = shapes.request(0, vcpus=16, ram_mb=32768)
        cpu = score(scorers.gpu_host_reserve, shapes.cpu_only(), req)
        gpu = score(scorers.gpu_host_reserve, self.gpu_host(), req)
        self.assertEqual(1.0, cpu)
        self.assertLess(gpu, cpu)

    def test_host_without_free_gpus_is_fine(self):
        """A plain VM on a dgx whose GPUs are all busy: 1.0."""
        req = shapes.request(0, vcpus=16)
        self.assertEqual(1.0, score(scorers.gpu_host_reserve,
                                    self.gpu_host(busy=range(8)), req))

    def test_vm_eating_gpu_cpu_share_scores_lower(self):
        """A plain VM that strands more GPUs scores lower.

        dgx with 8 free GPUs and 64 of 128 vCPUs free (no spare beyond
        the GPUs' 16-vCPU shares): a 16-vCPU VM strands one GPU, a
        32-vCPU VM two.
        """
        tight = self.gpu_host(free_vcpus=64)
        small = score(scorers.gpu_host_reserve, tight,
                      shapes.request(0, vcpus=16, ram_mb=0))
        large = score(scorers.gpu_host_reserve, tight,
                      shapes.request(0, vcpus=32, ram_mb=0))
        self.assertGreater(small, large)
        # 16 vCPUs = one GPU's share stranded: 1 / (1 + 1 + 0.02 * 8).
        self.assertAlmostEqual(1.0 / 2.16, small)

    def test_spare_cpu_beyond_gpu_needs_strands_nothing(self):
        """A plain VM within the spare CPU strands nothing.

        dgx with 4 GPUs busy and 128 vCPUs free: 4 free GPUs need 64, a
        16-vCPU VM fits in the spare; only the touch penalty applies.
        """
        host = self.gpu_host(free_vcpus=128, busy=(0, 1, 2, 3))
        value = score(scorers.gpu_host_reserve, host,
                      shapes.request(0, vcpus=16, ram_mb=0))
        self.assertAlmostEqual(1.0 / (1.0 + 0.02 * 4), value)

    def test_unknown_totals_use_share_of_free(self):
        """Unknown host totals: the VM's share of free CPU counts.

        A VM taking half the free vCPUs of a host with 2 free GPUs
        strands one GPU's worth.
        """
        host = model.HostView('h', shapes.dual_socket_4gpu().gpus[:2],
                              free_vcpus=32, free_ram_mb=None)
        value = score(scorers.gpu_host_reserve, host,
                      shapes.request(0, vcpus=16, ram_mb=1))
        self.assertAlmostEqual(1.0 / (1.0 + 1.0 + 0.02 * 2), value)

    def test_neutral_for_gpu_vms(self):
        """A GPU VM: 1.0 on every host."""
        self.assertEqual(1.0, score(scorers.gpu_host_reserve,
                                    self.gpu_host(), shapes.request(1)))


class ResourceBalanceTest(base.BaseTestCase):

    def dgx(self, free_vcpus, busy=()):
        host = shapes.occupy(shapes.dgx_8gpu(), *busy)
        return shapes.with_resources(host, free_vcpus, 1024 * 1024, 128,
                                     1024 * 1024)

    def test_cpu_hungry_gpu_vm_prefers_the_host_it_strands_nothing_on(self):
        """1 GPU, 48 vCPUs: the dgx with 96 free vCPUs wins (1.0).

        dgx-tight has 6 GPUs free and 96 vCPUs: after the VM 5 free GPUs
        need 80 vCPUs (16 each) and 48 leaves 48: two GPUs' shares
        eaten, 1/3. dgx-roomy has 128 vCPUs free for the same GPUs.
        """
        req = shapes.request(1, vcpus=48, ram_mb=0)
        tight = score(scorers.resource_balance,
                      self.dgx(96, busy=(0, 1)), req)
        roomy = score(scorers.resource_balance,
                      self.dgx(128, busy=(0, 1)), req)
        self.assertEqual(1.0, roomy)
        self.assertAlmostEqual(1.0 / 3.0, tight)

    def test_last_gpus_strand_nothing(self):
        """A VM taking the host's last free GPU: 1.0 however big."""
        req = shapes.request(1, vcpus=120, ram_mb=0)
        host = self.dgx(8, busy=range(7))
        self.assertEqual(1.0, score(scorers.resource_balance, host, req))

    def test_neutral_for_plain_vms(self):
        """A plain VM: 1.0 everywhere (gpu_host_reserve judges it)."""
        self.assertEqual(1.0, score(scorers.resource_balance, self.dgx(8),
                                    shapes.request(0, vcpus=64)))


class RegistryTest(base.BaseTestCase):

    def test_entry_points_name_the_scorers(self):
        """The stevedore namespace lists exactly the module's scorers."""
        manager = stevedore.ExtensionManager(scorers.NAMESPACE)
        self.assertEqual(scorers.SCORERS,
                         {ext.name: ext.plugin for ext in manager})

    def test_weighted_sum(self):
        """weighted_sum multiplies each scorer; missing names weigh 1."""
        idx = host_index.HostIndex(shapes.dgx_8gpu())
        req = shapes.request(2)
        chosen = feasibility.best_set(idx, req).best
        every = {name: scorers.instantiate(plugin)
                 for name, plugin in scorers.SCORERS.items()}
        every['fragmentation_gradient'].observe(req)
        parts = {name: f(idx, req, chosen) for name, f in every.items()}
        total = scorers.weighted_sum(idx, req, chosen, every,
                                     {'locality': 2.0})
        self.assertAlmostEqual(sum(parts.values()) + parts['locality'],
                               total)


class ColdStartPriorTest(base.BaseTestCase):
    """Before the mix says anything, the prior packs 1-GPU guests."""

    def setUp(self):
        super().setUp()
        self.free = shapes.with_resources(shapes.dgx_8gpu('free'), 96,
                                          10 ** 6, 96, 10 ** 6)
        self.used = shapes.with_resources(
            shapes.occupy(shapes.dgx_8gpu('used'), 0), 84, 10 ** 6, 96,
            10 ** 6)
        self.req = shapes.request(1, vcpus=12, ram_mb=1024)

    def test_prior_mix_is_every_power_of_two_up_to_the_host(self):
        idx = host_index.HostIndex(self.free)
        self.assertEqual(
            [(1, 12.0), (2, 24.0), (4, 48.0), (8, 96.0)],
            [(shape.gpus, shape.vcpus)
             for shape, _ in scorers.prior_mix(idx)])
        self.assertAlmostEqual(
            1.0, sum(share for _, share in scorers.prior_mix(idx)))

    def test_nothing_learned_yet_packs(self):
        fresh = scorers.FragmentationGradient()
        self.assertGreater(score(fresh, self.used, self.req),
                           score(fresh, self.free, self.req))

    def test_a_mix_of_one_gpu_guests_ties_and_the_prior_packs(self):
        """The cold start of a new cloud: 1-GPU guests only, so far."""
        scorer = scorers.FragmentationGradient()
        for _ in range(6):
            scorer.observe(self.req)
        self.assertGreater(score(scorer, self.used, self.req),
                           score(scorer, self.free, self.req))

    def test_the_learned_mix_outweighs_the_prior(self):
        """Learned: 7-GPU guests. 'used' has exactly 7 free GPUs.

        A 1-GPU guest there leaves 6 that no 7-GPU guest can use (+6);
        on 'free' it leaves 7 for one (-1). The learned mix sends it to
        'free' although the prior alone would pack it on 'used'.
        """
        scorer = scorers.FragmentationGradient()
        scorer.observe(shapes.request(7, vcpus=84, ram_mb=1024))
        self.assertGreater(score(scorer, self.free, self.req),
                           score(scorer, self.used, self.req))


class FragmentationGradientTest(base.BaseTestCase):
    """A profile of 1-GPU guests with 12 vCPUs, then one request."""

    def setUp(self):
        super(FragmentationGradientTest, self).setUp()
        self.scorer = scorers.FragmentationGradient(window=10)
        self.scorer.observe(shapes.request(1, vcpus=12, ram_mb=1024))

    def test_host_share_before_any_gpu_request(self):
        """No GPU request seen: each GPU needs its share of the host.

        A plain guest of 48 vCPUs on 'dgx' (8 GPUs, 96 vCPUs: 12 each)
        eats the share of 4 GPUs; on 'cpu' (no GPU) it strands nothing.
        """
        fresh = scorers.FragmentationGradient()
        fresh.observe(shapes.request(0))
        dgx = shapes.with_resources(shapes.dgx_8gpu(), 96, 10 ** 6, 96,
                                    10 ** 6)
        req = shapes.request(0, vcpus=48, ram_mb=1024)
        self.assertAlmostEqual(1.0 / (1.0 + 2 ** 4), score(fresh, dgx, req))
        self.assertEqual(0.5, score(fresh, shapes.cpu_only(), req))

    def test_cpu_hungry_guest_goes_where_cpu_is_spare(self):
        """1 GPU + 24 vCPUs: 'roomy' (8 GPUs, 192 vCPUs) beats 'tight'.

        On 'tight' (8 GPUs, 96 vCPUs: 12 per GPU) the guest leaves 72
        vCPUs for 7 GPUs, enough for 6 guests of the profile.
        """
        req = shapes.request(1, vcpus=24, ram_mb=1024)
        tight = shapes.with_resources(shapes.dgx_8gpu('tight'), 96, 10 ** 6)
        roomy = shapes.with_resources(shapes.dgx_8gpu('roomy'), 192, 10 ** 6)
        self.assertGreater(score(self.scorer, roomy, req),
                           score(self.scorer, tight, req))
        # 0.5 for the learned mix; the prior's tie-breaker is below 1e-5.
        self.assertAlmostEqual(0.5, score(self.scorer, roomy, req), places=5)

    def test_plain_guest_keeps_off_gpus_it_would_strand(self):
        """No GPU, 48 vCPUs: 'cpu' (no GPU) beats 'dgx' (96 vCPUs).

        On 'dgx' the 48 vCPUs are the share of 4 free GPUs.
        """
        req = shapes.request(0, vcpus=48)
        dgx = shapes.with_resources(shapes.dgx_8gpu(), 96, 10 ** 6)
        on_dgx = score(self.scorer, dgx, req)
        self.assertEqual(0.5, score(self.scorer, shapes.cpu_only(), req))
        self.assertAlmostEqual(1.0 / (1.0 + 2 ** 4), on_dgx)

    def test_filling_a_stranded_gpu_scores_best(self):
        """1 GPU, 4 vCPUs: 'last' (1 GPU, 4 vCPUs left) beats 'dgx'.

        Nobody of the profile fits on 'last': the guest rescues its GPU.
        """
        req = shapes.request(1, vcpus=4, ram_mb=1024)
        last = shapes.with_resources(
            shapes.occupy(shapes.dgx_8gpu('last'), *range(7)), 4, 10 ** 6)
        dgx = shapes.with_resources(shapes.dgx_8gpu(), 96, 10 ** 6)
        self.assertGreater(score(self.scorer, last, req),
                           score(self.scorer, dgx, req))
        self.assertGreater(score(self.scorer, last, req), 0.5)

    def test_is_a_registered_scorer(self):
        """The entry point loads the class (the weigher instantiates it)."""
        manager = stevedore.ExtensionManager(scorers.NAMESPACE)
        self.assertIs(scorers.FragmentationGradient,
                      manager['fragmentation_gradient'].plugin)
