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
"""Hypothesis: random pools and specs never break the nova adapters.

Pools are written straight into a real ``PciDeviceStats`` (the scheduler's
``HostState.pci_stats``) with missing, malformed and wrong-type tags; the
requests are real ``RequestSpec`` objects of random GPU flavors. Properties:

* the filter and the weigher never reach their error path (no exception is
  logged) and return a bool / a float;
* a host passed under strict isolation has enough GPUs whose pools prove
  isolation (``isolated``, or ``shared`` groups), on one NUMA node when
  ``required``; with PCI-in-Placement every kept candidate consists of such
  GPUs only, takes shared groups whole and sits on one node when required.
"""

import collections
import itertools

import fixtures
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from nova.pci import stats
from nova.tests.unit.scheduler import fakes as nova_fakes

from gpu_passthrough_filter.scheduler import filter as gpu_filter
from gpu_passthrough_filter.scheduler import weigher as gpu_weigher
from gpu_passthrough_filter import tags
from tests.unit.scheduler import fakes

_MISSING = object()
_ADDRESSES = ['0000:%02x:00.0' % bus for bus in (0x18, 0x2a, 0x3a, 0x5d,
                                                 0x9a, 0xab, 0xba)]
_STRICT_OK = (tags.ISOLATED, tags.SHARED)

_junk = st.one_of(st.none(), st.integers(-3, 40), st.text(max_size=6),
                  st.lists(st.integers(), max_size=2), st.floats(),
                  st.booleans())
_tag_values = {
    tags.ISOLATION: st.one_of(st.sampled_from(
        ['isolated', 'shared', 'unknown', 'ISOLATED', 'nope']), _junk),
    tags.NUMA_NODE: st.one_of(st.sampled_from(['0', '1', '-1']), _junk),
    tags.IOMMU_GROUP: st.one_of(st.sampled_from(['7', '8', '9']), _junk),
    tags.GROUP_GPUS: st.one_of(st.sampled_from(['1', '2', '3']), _junk),
    tags.SWITCH: st.one_of(st.sampled_from(['s1', 's2', 'none']), _junk),
    tags.ROOT: _junk,
    tags.MODEL: _junk,
}


def _good_pool(draw, address):
    """A pool as the agent and nova write it (the values may disagree)."""
    return {
        'address': address, 'vendor_id': '10de', 'product_id': '2330',
        'numa_node': draw(st.sampled_from([0, 1])), 'dev_type': 'type-PCI',
        'count': 1,
        tags.ISOLATION: draw(st.sampled_from(
            ['isolated', 'isolated', 'shared', 'unknown'])),
        tags.NUMA_NODE: draw(st.sampled_from(['0', '1'])),
        tags.IOMMU_GROUP: draw(st.sampled_from(['7', '8', '9', address])),
        tags.GROUP_GPUS: draw(st.sampled_from(['1', '2', '3'])),
        tags.SWITCH: draw(st.sampled_from(['s1', 's2', 'none'])),
    }


def _bad_pool(draw, address):
    """A pool with random, missing and wrong-type values."""
    pool = {
        'address': address,
        'vendor_id': draw(st.sampled_from(['10de', '10de', '15b3', 5])),
        'product_id': draw(st.sampled_from(['2330', '2330', '20b2'])),
        'numa_node': draw(st.sampled_from([0, 1, None, -1, '1'])),
        'dev_type': 'type-PCI',
        'count': draw(st.sampled_from([1, 1, 1, 0, 2, '1', None])),
    }
    for tag, values in _tag_values.items():
        value = draw(st.one_of(st.just(_MISSING), values))
        if value is not _MISSING:
            pool[tag] = value
    return pool


@st.composite
def pools(draw):
    count = draw(st.integers(0, len(_ADDRESSES)))
    result = []
    for address in _ADDRESSES[:count]:
        make = _good_pool if draw(st.booleans()) else _bad_pool
        pool = make(draw, address)
        if draw(st.booleans()):
            pool['rp_uuid'] = 'rp-' + address
        result.append(pool)
    return result


_flavors = st.builds(
    lambda alias, count, isolation, numa, locality: fakes.flavor(
        '%s:%d' % (alias, count), gpu_passthrough__isolation=isolation,
        gpu_passthrough__numa_affinity=numa,
        gpu_passthrough__locality=locality),
    st.sampled_from(['h100', 'a100', 'cx7']), st.integers(1, 4),
    st.sampled_from(['strict', 'any']),
    st.sampled_from(['required', 'preferred', 'none']),
    st.sampled_from(['switch', 'numa', 'any']))


def _state(pool_list):
    pci_stats = stats.PciDeviceStats(None)
    pci_stats.pools = pool_list
    return nova_fakes.FakeHostState('h', 'h', {
        'pci_stats': pci_stats, 'vcpus_total': 32, 'vcpus_used': 4,
        'cpu_allocation_ratio': 1.0, 'ram_allocation_ratio': 1.0,
        'total_usable_ram_mb': 65536, 'free_ram_mb': 32768,
        'allocation_candidates': []})


def _candidates(spec, pool_list):
    [request] = [r for r in spec.pci_requests.requests]
    providers = [p['rp_uuid'] for p in pool_list if 'rp_uuid' in p]
    providers.append('rp-unknown')
    groups = ['%s-%d' % (request.request_id, i)
              for i in range(request.count)]
    result = []
    for choice in itertools.islice(
            itertools.permutations(providers, len(groups)), 60):
        mappings = {'': ['root']}
        mappings.update({g: [rp] for g, rp in zip(groups, choice)})
        result.append({'mappings': mappings, 'allocations': {}})
    return result


def _isolation(pool):
    value = pool.get(tags.ISOLATION)
    return value.lower() if isinstance(value, str) else None


def _node(pool):
    for value in (pool.get(tags.NUMA_NODE), pool.get('numa_node')):
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _count(pool):
    value = pool.get('count')
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if type(value) is int and value > 0 else 0


def _proven(pool):
    return _isolation(pool) in _STRICT_OK


class PropertiesTest(fakes.TestCase):

    def setUp(self):
        super(PropertiesTest, self).setUp()
        self.log = self.useFixture(fixtures.FakeLogger(
            name='gpu_passthrough_filter', level='WARNING'))

    def check_no_error_logged(self):
        self.assertNotIn('failed on host', self.log.output)

    def check_strict_pass(self, spec, pool_list):
        """A strict pass needs enough proven GPUs, on one node if required."""
        specs = spec.flavor.extra_specs
        if specs['gpu_passthrough:isolation'] != 'strict':
            return
        need = spec.pci_requests.requests[0].count
        proven = [p for p in pool_list if _proven(p)]
        self.assertGreaterEqual(sum(_count(p) for p in proven), need)
        if specs['gpu_passthrough:numa_affinity'] == 'required':
            nodes = collections.Counter()
            for pool in proven:
                nodes[_node(pool)] += _count(pool)
            nodes.pop(None, None)
            self.assertGreaterEqual(max(nodes.values() or [0]), need)

    def check_candidate(self, spec, pool_list, candidate):
        specs = spec.flavor.extra_specs
        by_rp = {p['rp_uuid']: p for p in pool_list if 'rp_uuid' in p}
        chosen = [by_rp[rps[0]] for name, rps in
                  candidate['mappings'].items() if name]
        if specs['gpu_passthrough:numa_affinity'] == 'required':
            self.assertEqual(1, len({_node(p) for p in chosen}))
            self.assertIsNotNone(_node(chosen[0]))
        if specs['gpu_passthrough:isolation'] != 'strict':
            return
        self.assertTrue(all(_proven(p) for p in chosen))
        addresses = {p['address'] for p in chosen}
        for pool in chosen:
            if _isolation(pool) == tags.SHARED:
                mates = [p['address'] for p in pool_list
                         if p.get(tags.IOMMU_GROUP) == pool[
                             tags.IOMMU_GROUP]]
                self.assertEqual(set(), set(mates) - addresses)

    @settings(max_examples=150, deadline=None)
    @given(pool_list=pools(), flavor=_flavors)
    def test_legacy_filter_and_weigher(self, pool_list, flavor):
        spec = fakes.request_spec(flavor)
        state = _state(pool_list)

        passed = gpu_filter.GPUPassthroughFilter().host_passes(state, spec)
        weight = gpu_weigher.GPUPassthroughWeigher()._weigh_object(
            state, spec)

        self.check_no_error_logged()
        self.assertIsInstance(passed, bool)
        self.assertIsInstance(weight, float)
        if passed and 'cx7' not in flavor.extra_specs[
                'pci_passthrough:alias']:
            self.check_strict_pass(spec, pool_list)

    @settings(max_examples=150, deadline=None)
    @given(pool_list=pools(), flavor=_flavors)
    def test_candidates_kept_are_policy_safe(self, pool_list, flavor):
        self.flags(group='filter_scheduler', pci_in_placement=True)
        spec = fakes.request_spec(flavor)
        state = _state(pool_list)
        state.allocation_candidates = _candidates(spec, pool_list)

        passed = gpu_filter.GPUPassthroughFilter().host_passes(state, spec)
        gpu_weigher.GPUPassthroughWeigher()._weigh_object(state, spec)

        self.check_no_error_logged()
        if 'cx7' in flavor.extra_specs['pci_passthrough:alias']:
            return
        self.assertEqual(passed, bool(state.allocation_candidates))
        for candidate in state.allocation_candidates:
            self.check_candidate(spec, pool_list, candidate)
