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
"""HostState and RequestSpec translation into the policy core's types."""

import fixtures
import nova.conf

from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter.scheduler import request_view
from gpu_passthrough_filter import tags
from tests.unit.scheduler import fakes

FakeGPU = fakes.FakeGPU
CONF = nova.conf.CONF


class HostFactsTest(fakes.TestCase):

    def facts(self, *args, **kwargs):
        return host_view.build_host_facts(
            fakes.host_state('h', *args, **kwargs), CONF.gpu_passthrough)

    def test_tags_become_gpu_fields(self):
        facts = self.facts([FakeGPU('0000:81:00.0', numa_node=1,
                                    iommu_group=12, switch='0000:80:00.0')])
        self.assertEqual((model.GPUView(
            address='0000:81:00.0', model='10de:2330', numa_node=1,
            iommu_group='12', isolation=tags.ISOLATED,
            switch='0000:80:00.0', root='pci0000:80', free=True),),
            facts.index.host.gpus)
        self.assertEqual(frozenset(['10de:2330']), facts.tagged_models)

    def test_malformed_tags_mean_unknown(self):
        """Bad NUMA tag: pool's node; bad verdict: unknown; no group."""
        facts = self.facts([FakeGPU('0000:81:00.0', numa_node=1, spec_extra={
            tags.NUMA_NODE: 'one', tags.ISOLATION: 'mostly',
            tags.IOMMU_GROUP: '', tags.GROUP_GPUS: 'x'})])
        [gpu] = facts.index.host.gpus
        self.assertEqual((1, tags.UNKNOWN, None),
                         (gpu.numa_node, gpu.isolation, gpu.iommu_group))

    def test_busy_group_mate_is_a_placeholder(self):
        """Group 7 tags 2 GPUs, one visible: the group holds a busy one."""
        facts = self.facts([FakeGPU('0000:81:00.0', iommu_group=7),
                            FakeGPU('0000:82:00.0', iommu_group=7)],
                           busy=['0000:82:00.0'])
        gpus = facts.index.host.gpus
        self.assertEqual([True, False], [gpu.free for gpu in gpus])
        self.assertEqual(['7', '7'], [gpu.iommu_group for gpu in gpus])
        self.assertEqual(0, facts.index.free)

    def test_untagged_gpu_vendor_pools_only(self):
        """Untagged H100: a GPU of unknown isolation; untagged NIC: none."""
        facts = self.facts([FakeGPU('0000:81:00.0'),
                            FakeGPU('0000:3b:00.0', model=fakes.NIC)],
                           tagged=False)
        self.assertEqual(
            [('0000:81:00.0', tags.UNKNOWN)],
            [(g.address, g.isolation) for g in facts.index.host.gpus])
        self.assertEqual(1, facts.untagged)

    def test_providers_map_to_addresses(self):
        state = fakes.host_state('h', [FakeGPU('0000:81:00.0')],
                                 in_placement=True)
        facts = host_view.build_host_facts(state, CONF.gpu_passthrough)
        self.assertEqual({state.providers['0000:81:00.0']: '0000:81:00.0'},
                         dict(facts.rp_addresses))

    def test_resources_as_nova_counts_them(self):
        state = fakes.host_state('h', vcpus=64, vcpus_used=16,
                                 ram_mb=1000, free_ram_mb=400)
        state.cpu_allocation_ratio = 2.0
        host = host_view.build_host_facts(
            state, CONF.gpu_passthrough).index.host
        self.assertEqual((128.0, 112.0, 1000.0, 400.0),
                         (host.total_vcpus, host.free_vcpus,
                          host.total_ram_mb, host.free_ram_mb))


class RequestFactsTest(fakes.TestCase):

    def test_gpu_aliases_only_with_policies(self):
        """h100:2 + cx7:1: one GPU demand; the NIC is nova's business."""
        spec = fakes.request_spec(fakes.flavor(
            'h100:2,cx7:1', vcpus=16, memory_mb=4096,
            gpu_passthrough__locality='switch'))
        facts = request_view.request_facts(spec, CONF.gpu_passthrough)
        host = host_view.build_host_facts(
            fakes.host_state('h'), CONF.gpu_passthrough)
        request, request_ids = facts.for_host(
            host, host_view.vendor_ids(CONF.gpu_passthrough))
        self.assertEqual(model.GPURequest(
            demands=(model.GPUDemand(2, frozenset(['10de:2330'])),),
            isolation=model.Isolation.STRICT,
            numa_affinity=model.NumaAffinity.PREFERRED,
            locality=model.Locality.SWITCH, vcpus=16, ram_mb=4096), request)
        h100_request = spec.pci_requests.requests[0]
        self.assertEqual((h100_request.request_id,), request_ids)

    def test_defaults_come_from_config(self):
        self.flags(default_isolation='any', default_numa_affinity='required')
        spec = fakes.request_spec(fakes.flavor('h100:1'))
        policies = request_view.request_facts(
            spec, CONF.gpu_passthrough).policies
        self.assertEqual(
            (model.Isolation.ANY, model.NumaAffinity.REQUIRED,
             model.Locality.ANY), tuple(policies))


class ValueParsingTest(fakes.TestCase):

    def test_integer_takes_only_ascii_decimal_digits(self):
        """'¹' and '٣' pass str.isdigit() but are no count (hypothesis)."""
        cases = {'3': 3, ' -1 ': -1, '¹': None, '٣': None, '-': None,
                 '': None, True: None, 7: 7, '0x10': None}
        self.assertEqual(cases, {value: tags.decode_integer(value)
                                 for value in cases})


class FactsAcrossRequestsTest(fakes.TestCase):
    """Nova 34 builds new HostStates per request; facts are kept by value."""

    def setUp(self):
        super(FactsAcrossRequestsTest, self).setUp()
        host_view.FACTS_BY_VALUE.clear()
        self.addCleanup(host_view.FACTS_BY_VALUE.clear)
        self.opts = nova.conf.CONF.gpu_passthrough

    def state(self, busy=(), vcpus_used=0):
        return fakes.host_state('hgx', fakes.fake_gpus.eight_gpu_host(),
                                busy=busy, vcpus_used=vcpus_used)

    def test_a_new_host_state_of_an_unchanged_host_reuses_its_facts(self):
        first = host_view.host_facts(self.state(), self.opts)
        self.assertIs(first, host_view.host_facts(self.state(), self.opts))
        self.assertEqual((1, 1), (host_view.FACTS_BY_VALUE.hits,
                                  host_view.FACTS_BY_VALUE.misses))

    def test_a_changed_pool_tag_or_usage_builds_new_facts(self):
        first = host_view.host_facts(self.state(), self.opts)
        busy = host_view.host_facts(self.state(busy=['0000:18:00.0']),
                                    self.opts)
        used = host_view.host_facts(self.state(vcpus_used=8), self.opts)
        retagged = self.state()
        retagged.pci_stats.pools[0][tags.ISOLATION] = tags.SHARED
        shared = host_view.host_facts(retagged, self.opts)
        self.assertEqual(4, len({id(f) for f in (first, busy, used,
                                                 shared)}))
        self.assertEqual(tags.SHARED, shared.index.gpus[
            retagged.pci_stats.pools[0]['address']].isolation)

    def test_size_bounds_the_cache_and_zero_disables_it(self):
        self.flags(host_cache_size=2)
        for used in range(4):
            host_view.host_facts(self.state(vcpus_used=used), self.opts)
        self.assertEqual(2, len(host_view.FACTS_BY_VALUE))
        self.flags(host_cache_size=0)
        host_view.host_facts(self.state(vcpus_used=9), self.opts)
        self.assertEqual(0, len(host_view.FACTS_BY_VALUE))


class PoolCountCapTest(fakes.TestCase):

    def test_huge_pool_count_is_capped_with_a_log_line(self):
        """A pool claiming 10**9 devices: capped, logged, cheap."""
        log = self.useFixture(fixtures.FakeLogger(
            name='gpu_passthrough_filter', level='WARNING'))
        state = fakes.host_state('h', fakes.fake_gpus.eight_gpu_host())
        state.pci_stats.pools[0]['count'] = 10 ** 9
        facts = host_view.build_host_facts(
            state, nova.conf.CONF.gpu_passthrough)
        self.assertEqual(7 + host_view.MAX_POOL_DEVICES,
                         len(facts.index.gpus))
        self.assertIn('reports 1000000000 devices; only 256', log.output)
