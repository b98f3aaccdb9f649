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
"""The simulator's loop through nova's real scheduler code, small fleets.

Known optimum: two 8-GPU hosts, four 1-GPU VMs then one 8-GPU VM. Packing
the small VMs on one host places everything (12 GPUs); spreading them
leaves no host with 8 free GPUs: the 8-GPU VM fails and 4 GPUs stay
unallocated.
"""

import dataclasses

from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslotest import base

from gpu_passthrough_filter.scheduler import request_log
from gpu_passthrough_filter.sim import fleet
from gpu_passthrough_filter.sim import metrics
from gpu_passthrough_filter.sim import nova_env
from gpu_passthrough_filter.sim import runner
from gpu_passthrough_filter.sim import workload
from gpu_passthrough_filter import tags

H100 = fleet.GPUModel('H100', '10de', '2330')


def _fleet(hosts=2, shared=False):
    return fleet.Fleet([
        fleet.SimHost('host-%d' % index, vcpus=64, memory_mb=512 * 1024,
                      gpus=fleet.build_gpus(8, H100, shared_groups=shared))
        for index in range(hosts)])


def _vm(gpus, name=None):
    return workload.VMRequest(name or 'vm-%dg' % gpus, vcpus=4 * max(gpus, 1),
                              memory_mb=16384 * max(gpus, 1), gpus=gpus)


def _packing():
    """Nova with its RAM and CPU weighers inverted: stacks VMs."""
    return runner.Policy('nova-packing', options={
        'filter_scheduler.ram_weight_multiplier': -1.0,
        'filter_scheduler.cpu_weight_multiplier': -1.0})


class SimTestCase(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(config_fixture.Config(cfg.CONF))

    def run_policy(self, sim_fleet, arrivals, policy, seed=0):
        aliases = nova_env.AliasBook(sim_fleet.models(),
                                     [r.models for r in arrivals])
        return runner.run_policy(sim_fleet, arrivals, policy, aliases,
                                 seed=seed)

    def summary(self, sim_fleet, result, arrivals):
        return metrics.summarize(result, sim_fleet,
                                 workload.typical_gpu_shape(arrivals))


class TestKnownOptimum(SimTestCase):

    arrivals = [_vm(1, 'small-%d' % i) for i in range(4)] + [_vm(8, 'big')]

    def test_nova_default_packs_when_builds_are_over(self):
        """nova-default, each build over before the next request.

        With no build in flight IoOpsWeigher sees 0 everywhere, and
        PCIWeigher (which keeps hosts with free PCI devices for PCI
        requests, and counts them) outweighs the RAM and CPU weighers,
        whose weights nova normalises against 0 (0.97 against 1 after one
        small VM): the small VMs stack on one host and the big VM fits.
        An earlier simulator counted every guest ever placed as an I/O
        operation and made nova-default spread here.
        """
        sim_fleet = _fleet()
        result = self.run_policy(sim_fleet, self.arrivals,
                                 runner.builtin_policies()[0])
        self.assertEqual(1, len({p.host for p in result.placements[:4]}))
        summary = self.summary(sim_fleet, result, self.arrivals)
        self.assertEqual({}, summary.failed_by_gpus)
        self.assertEqual(0, max(s.num_io_ops for s in result.states.values()))

    def test_packing_policy_reaches_the_optimum(self):
        """Stacking weighers: small VMs on one host, the big VM fits."""
        sim_fleet = _fleet()
        result = self.run_policy(sim_fleet, self.arrivals, _packing())
        self.assertEqual(1, len({p.host for p in result.placements[:4]}))
        summary = self.summary(sim_fleet, result, self.arrivals)
        self.assertEqual({}, summary.failed_by_gpus)
        self.assertEqual(12, summary.allocated)
        self.assertEqual(8, len(result.placements[-1].gpus))

    def test_claims_are_real_devices_of_the_chosen_host(self):
        sim_fleet = _fleet()
        result = self.run_policy(sim_fleet, self.arrivals, _packing())
        addresses = {(h.name, g.address)
                     for h in sim_fleet.hosts for g in h.gpus}
        claimed = [(p.host, a) for p in result.placements for a in p.gpus]
        self.assertEqual(12, len(set(claimed)))
        self.assertLessEqual(set(claimed), addresses)
        state = result.states[result.placements[0].host]
        self.assertEqual(4 * 4, state.vcpus_used)

    def test_pci_in_placement_follows_the_first_candidate(self):
        """With PCI in Placement nova claims the candidate's providers.

        Placement's order is its own (set iteration order): across seeds
        nova's first pair changes; each claim is a free pair of the host.
        """
        sim_fleet = _fleet(hosts=1)
        arrivals = [_vm(2), _vm(2)]
        addresses = {gpu.address for gpu in sim_fleet.hosts[0].gpus}
        first_pairs = set()
        for seed in range(6):
            result = self.run_policy(sim_fleet, arrivals,
                                     runner.builtin_policies()[1], seed=seed)
            first, second = (set(p.gpus) for p in result.placements)
            self.assertEqual((2, 2), (len(first), len(second)))
            self.assertFalse(first & second)
            self.assertLessEqual(first | second, addresses)
            first_pairs.add(frozenset(first))
        self.assertGreater(len(first_pairs), 1)

    def test_project_policy_keeps_the_big_vm_on_one_numa_node(self):
        """gpu-passthrough: after a 1-GPU VM, the 4-GPU VM gets node 1.

        The simulator's aliases name only a resource class (PCI in
        Placement); the project's filter once read them as "no GPU" and
        nova's first candidate (address order) crossed the NUMA nodes,
        as nova-pci-in-placement does here.
        """
        sim_fleet = _fleet(hosts=1)
        arrivals = [_vm(1), _vm(4)]
        numa = {g.address: g.numa_node for g in sim_fleet.hosts[0].gpus}
        nova = self.run_policy(sim_fleet, arrivals,
                               runner.builtin_policies()[1])
        ours = self.run_policy(sim_fleet, arrivals,
                               runner.builtin_policies()[2])
        self.assertEqual({0, 1}, {numa[a] for a in nova.placements[1].gpus})
        self.assertEqual({1}, {numa[a] for a in ours.placements[1].gpus})
        self.assertEqual(4, len(ours.placements[1].gpus))

    def test_time_inside_each_plugin_is_recorded(self):
        """Nova's PCI filters and the project's plugins are timed apart."""
        sim_fleet = _fleet(hosts=2)
        arrivals = [_vm(1), _vm(2)]
        nova = self.summary(sim_fleet, self.run_policy(
            sim_fleet, arrivals, runner.builtin_policies()[1]), arrivals)
        ours_run = self.run_policy(sim_fleet, arrivals,
                                   runner.builtin_policies()[2])
        ours = self.summary(sim_fleet, ours_run, arrivals)
        self.assertGreater(nova.nova_pci_ms, 0.0)
        self.assertEqual(0.0, nova.project_ms)
        self.assertGreater(ours.project_ms, 0.0)
        self.assertIn('GPUPassthroughWeigher', ours_run.placements[0].parts)
        self.assertLess(ours.project_ms, ours.ms_per_request)


class TestCPUStrandingOptimum(SimTestCase):
    """'tight': 4 GPUs, 48 vCPUs (12 per GPU); 'roomy': 2 GPUs, 104 vCPUs.

    Arrivals: a 1-GPU VM with 40 vCPUs, four with 12, another with 40.
    Optimum: both 40-vCPU VMs on 'roomy', the four small ones on 'tight':
    every GPU given. A policy that puts a small VM on 'roomy' leaves
    'tight' a free GPU with 12 vCPUs, which the second big VM cannot use.
    """

    arrivals = ([workload.VMRequest('big-1', 40, 8192, 1)] +
                [workload.VMRequest('small-%d' % i, 12, 8192, 1)
                 for i in range(4)] +
                [workload.VMRequest('big-2', 40, 8192, 1)])

    def _fleet(self):
        return fleet.Fleet([
            fleet.SimHost('tight', vcpus=48, memory_mb=512 * 1024,
                          gpus=fleet.build_gpus(4, H100)),
            fleet.SimHost('roomy', vcpus=104, memory_mb=512 * 1024,
                          gpus=fleet.build_gpus(2, H100))])

    def test_nova_default_strands_a_gpu(self):
        """nova-default spreads: a small VM on 'roomy', big-2 fails."""
        sim_fleet = self._fleet()
        result = self.run_policy(sim_fleet, self.arrivals,
                                 runner.builtin_policies()[0])
        summary = self.summary(sim_fleet, result, self.arrivals)
        self.assertEqual({1: 1}, summary.failed_by_gpus)
        self.assertEqual(5, summary.allocated)

    def test_project_policy_reaches_the_optimum(self):
        """gpu-passthrough: small VMs fill 'tight', both big on 'roomy'."""
        sim_fleet = self._fleet()
        result = self.run_policy(sim_fleet, self.arrivals,
                                 runner.builtin_policies()[2])
        hosts = {p.request.name: p.host for p in result.placements}
        self.assertEqual({'big-1': 'roomy', 'big-2': 'roomy'},
                         {n: h for n, h in hosts.items() if 'big' in n})
        self.assertEqual({'tight'}, {h for n, h in hosts.items()
                                     if 'small' in n})
        summary = self.summary(sim_fleet, result, self.arrivals)
        self.assertEqual(6, summary.allocated)
        self.assertEqual({}, summary.failed_by_gpus)


class TestMetricsOnRuns(SimTestCase):

    def test_same_seed_same_placements(self):
        sim_fleet = _fleet(hosts=3)
        arrivals = workload.synthetic(workload.parse_mix('0:1,1:3,2:1'), 30,
                                      seed=4)
        first = self.run_policy(sim_fleet, arrivals,
                                runner.builtin_policies()[0], seed=2)
        again = self.run_policy(sim_fleet, arrivals,
                                runner.builtin_policies()[0], seed=2)
        self.assertEqual([(p.host, p.gpus) for p in first.placements],
                         [(p.host, p.gpus) for p in again.placements])

    def test_a_guest_given_a_held_group_mate_fails_to_boot(self):
        """nova knows no IOMMU groups: VM 'b' gets 'a''s group mate.

        Real Nova fails that boot ("group is not viable") and, with one
        host, has no alternate: 'b' is not placed, nothing is broken.
        """
        sim_fleet = _fleet(hosts=1, shared=True)
        arrivals = [_vm(1, 'a'), _vm(1, 'b')]
        result = self.run_policy(sim_fleet, arrivals,
                                 runner.builtin_policies()[0])
        self.assertEqual(['host-0', None],
                         [p.host for p in result.placements])
        self.assertEqual(1, result.placements[1].failed_boots)
        summary = self.summary(sim_fleet, result, arrivals)
        self.assertEqual((0, 1), (summary.isolation_breaks,
                                  summary.failed_boots))

    def test_locality_shares_from_claimed_devices(self):
        sim_fleet = _fleet(hosts=1)
        gpus = metrics.gpu_index(sim_fleet)
        first = sim_fleet.hosts[0].gpus
        placements = [
            runner.Placement(0, _vm(2), 'host-0',
                             (first[0].address, first[1].address)),
            runner.Placement(1, _vm(2), 'host-0',
                             (first[3].address, first[4].address))]
        count, numa, switch = metrics.locality_shares(placements, gpus)
        self.assertEqual((2, 50.0, 50.0), (count, numa, switch))

    def test_locality_shares_count_only_vms_the_fleet_allows(self):
        """Only VMs that can fit count in the 1 NUMA / 1 switch shares.

        On 8-GPU hosts with 2 NUMA nodes (4 GPUs each, 2 per switch) an
        8-GPU VM fits neither one node nor one switch; a 4-GPU VM fits
        one node only.
        """
        sim_fleet = _fleet(hosts=2)
        gpus = metrics.gpu_index(sim_fleet)
        first, second = sim_fleet.hosts[0].gpus, sim_fleet.hosts[1].gpus
        by_node = [g.address for g in second if g.numa_node == 0]
        placements = [
            runner.Placement(0, _vm(8), 'host-0',
                             tuple(g.address for g in first)),
            runner.Placement(1, _vm(4), 'host-1', tuple(by_node))]
        count, numa, switch = metrics.locality_shares(placements, gpus)
        self.assertEqual((2, 100.0, None), (count, numa, switch))

    def test_stranded_gpus_on_a_host_without_cpu_left(self):
        """A plain VM eats all vCPUs of a GPU host: its GPUs are stranded."""
        sim_fleet = _fleet(hosts=1)
        arrivals = [workload.VMRequest('cpu-hog', 64, 1024, 0)]
        result = self.run_policy(sim_fleet, arrivals,
                                 runner.builtin_policies()[0])
        self.assertEqual('host-0', result.placements[0].host)
        stranded = metrics.stranded_gpus(result, sim_fleet, (4, 16384))
        self.assertEqual(8, stranded)

    def test_curve_is_sampled_at_every_percent(self):
        placements = [runner.Placement(i, _vm(1), 'h', ('x',) if i < 5
                                       else ()) for i in range(10)]
        curve = metrics.allocation_curve(placements, 8, upto=125)
        self.assertEqual(list(range(1, 126)), [s for s, _ in curve])
        self.assertEqual(62.5, dict(curve)[100])
        self.assertEqual({100: 3, 130: None},
                         metrics.unallocated_at(curve, 8))


class TestPolicies(SimTestCase):

    def test_unknown_filter_is_reported(self):
        policy = runner.Policy('x', enabled_filters=['NoSuchFilter'])
        self.assertIn('NoSuchFilter', runner.missing_plugins(policy))

    def test_isolation_tags_reach_the_scheduler_pools(self):
        sim_fleet = _fleet(hosts=1, shared=True)
        aliases = nova_env.AliasBook(sim_fleet.models(), [])
        runner.configure(runner.builtin_policies()[0], aliases)
        state = nova_env.host_state(sim_fleet.hosts[0], 0, aliases, False)
        self.assertEqual(8, len(state.pci_stats.pools))
        pool = state.pci_stats.pools[0]
        self.assertEqual(tags.SHARED, pool[tags.ISOLATION])
        self.assertEqual('2', pool[tags.GROUP_GPUS])
        self.assertEqual(2, len(state.numa_topology.cells))


class TestSharedGroupBootFailures(SimTestCase):
    """A 4-GPU host whose GPUs sit in two shared 2-GPU IOMMU groups.

    Four 1-GPU VMs. A guest given a GPU whose group mate another guest
    holds cannot start ("group is not viable"): the simulator counts a
    failed boot and tries the next alternate (none here), so no placed VM
    shares a group and at most two of the four are placed.
    """

    arrivals = [_vm(1, 'small-%d' % i) for i in range(4)]

    def _fleet(self):
        return fleet.Fleet([fleet.SimHost(
            'shared', vcpus=64, memory_mb=512 * 1024,
            gpus=fleet.build_gpus(4, H100, shared_groups=True))])

    def _groups(self, sim_fleet, result):
        gpus = metrics.gpu_index(sim_fleet)
        return [gpus[(p.host, a)].iommu_group
                for p in result.placements for a in p.gpus]

    def test_nova_default_boots_fail_instead_of_breaking_isolation(self):
        sim_fleet = self._fleet()
        result = self.run_policy(sim_fleet, self.arrivals,
                                 runner.builtin_policies()[0])
        summary = self.summary(sim_fleet, result, self.arrivals)
        groups = self._groups(sim_fleet, result)
        self.assertEqual(len(groups), len(set(groups)))
        self.assertEqual(0, summary.isolation_breaks)
        self.assertGreater(summary.failed_boots, 0)
        self.assertEqual(4 - summary.placed, summary.failed_boots)
        self.assertLessEqual(summary.placed, 2)

    def test_project_policy_never_fails_a_boot(self):
        sim_fleet = self._fleet()
        result = self.run_policy(sim_fleet, self.arrivals,
                                 runner.builtin_policies()[2])
        summary = self.summary(sim_fleet, result, self.arrivals)
        self.assertEqual(0, summary.failed_boots)
        self.assertEqual(0, summary.isolation_breaks)


class TestSchedulerWorkers(SimTestCase):
    """Each worker learns the request mix from its own requests only."""

    def test_requests_alternate_and_each_weigher_learns_its_own(self):
        sim_fleet = _fleet(hosts=2)
        arrivals = [_vm(1, 'one-%d' % i) for i in range(3)] + [
            _vm(2, 'two-%d' % i) for i in range(3)]
        aliases = nova_env.AliasBook(sim_fleet.models(),
                                     [r.models for r in arrivals])
        simulation = runner.Simulation(
            sim_fleet, runner.builtin_policies()[2], aliases, workers=2)
        self.addCleanup(simulation.close)
        for index, request in enumerate(arrivals):
            simulation.schedule(index, request)
        logs = []
        for worker in simulation.workers:
            gpu_filter = next(f for f in worker.filters[1]
                              if type(f).__name__ == 'GPUPassthroughFilter')
            weigher = next(w for w in worker.weighers[1]
                           if type(w).__name__ == 'GPUPassthroughWeigher')
            self.assertIs(gpu_filter.requests, weigher.requests)
            self.assertIsNot(request_log.REQUESTS, weigher.requests)
            _, recorded = weigher.requests.since(0)
            logs.append([request.gpu_count for request in recorded])
        # Worker 0 saw requests 0, 2, 4; worker 1 saw 1, 3, 5.
        self.assertEqual([[1, 1, 2], [1, 2, 2]], logs)


class TestAbsentModel(SimTestCase):
    """A flavor naming a GPU model the fleet lacks finds no host."""

    def test_no_host_instead_of_an_undefined_alias(self):
        sim_fleet = _fleet(hosts=1)
        arrivals = [workload.VMRequest('a100-vm', 4, 16384, 1,
                                       models=('A100',)), _vm(1)]
        for policy in runner.builtin_policies()[:3]:
            result = self.run_policy(sim_fleet, arrivals, policy)
            self.assertEqual([None, 'host-0'],
                             [p.host for p in result.placements],
                             policy.name)


class TestOnlyOfferedGPUs(SimTestCase):
    """nova sees only the GPUs the agent would put in device_spec."""

    def test_a_gpu_of_unknown_isolation_is_not_offered(self):
        gpus = list(fleet.build_gpus(8, H100))
        gpus[0] = dataclasses.replace(gpus[0], isolation=tags.UNKNOWN)
        sim_fleet = fleet.Fleet([fleet.SimHost(
            'host-0', vcpus=64, memory_mb=512 * 1024, gpus=tuple(gpus))])
        arrivals = [_vm(8, 'eight'), _vm(7, 'seven')]
        result = self.run_policy(sim_fleet, arrivals,
                                 runner.builtin_policies()[0])
        self.assertEqual([None, 'host-0'],
                         [p.host for p in result.placements])
        self.assertNotIn(gpus[0].address, result.placements[1].gpus)


class TestFastNovaFilters(SimTestCase):
    """Nova's PCI filters in their fast forms place the same.

    What makes a whole-fleet run affordable, for the anchors too.
    """

    def test_same_placements_for_every_builtin_policy(self):
        sim_fleet = _fleet(hosts=3, shared=True)
        arrivals = workload.synthetic(workload.parse_mix('0:1,1:3,2:1,4:1'),
                                      40, seed=3)
        for policy in runner.builtin_policies():
            fast = runner.with_fast_nova_filters(policy)
            self.assertNotIn('PciPassthroughFilter', fast.enabled_filters)
            self.assertEqual(
                [(p.host, p.gpus) for p in self.run_policy(
                    sim_fleet, arrivals, policy).placements],
                [(p.host, p.gpus) for p in self.run_policy(
                    sim_fleet, arrivals, fast).placements], policy.name)
