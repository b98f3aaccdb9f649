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
"""PCI in Placement with aliases that name only a resource class.

Nova's advice for PCI in Placement is one resource class over several
``[pci] device_spec`` matchers and an alias ``{"name": "gpu",
"resource_class": "CUSTOM_GPU"}`` without vendor or product ids. Such an
alias was once read as "no GPU requested": the filter passed every host
without reordering its candidates and the weigher treated GPU guests as
plain guests (found by the simulator: 0% of multi-GPU guests on one NUMA
node).
"""

import itertools
import json

import nova.conf
from nova.pci import request as pci_request
from nova.scheduler import filters as nova_filters
from oslo_utils import uuidutils

from gpu_passthrough_filter.scheduler import filter as gpu_filter
from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter.scheduler import request_view
from tests.unit.scheduler import fakes

CONF = nova.conf.CONF

#: A resource-class alias, as nova documents for PCI in Placement.
RC_ALIAS = json.dumps({'name': 'anygpu', 'resource_class': 'CUSTOM_GPU'})


def rc_candidates(state, spec_obj, providers=None):
    """Placement's candidates for a resource-class request.

    Every ordered choice of distinct providers, in address order.

    :param providers: provider uuids to draw from; the host's GPU
        providers when None.
    """
    if providers is None:
        providers = [state.providers[pool['address']] for pool in sorted(
            state.pci_stats.pools, key=lambda p: p['address'])]
    request = spec_obj.pci_requests.requests[0]
    names = ['%s-%d' % (request.request_id, i) for i in range(request.count)]
    result = []
    for choice in itertools.permutations(providers, request.count):
        mappings = {'': ['root-rp']}
        mappings.update({n: [rp] for n, rp in zip(names, choice)})
        result.append({'mappings': mappings, 'allocations': {}})
    return result


class ResourceClassAliasTest(fakes.TestCase):

    def setUp(self):
        super(ResourceClassAliasTest, self).setUp()
        self.conf.config(alias=fakes.ALIASES + [RC_ALIAS], group='pci')
        # nova parses [pci] alias once per process (functools.cache).
        pci_request.get_alias_from_config.cache_clear()
        self.addCleanup(pci_request.get_alias_from_config.cache_clear)
        self.flags(group='filter_scheduler', pci_in_placement=True)
        self.filt = gpu_filter.GPUPassthroughFilter()

    def four_gpus_one_busy(self):
        """HGX with 18:00.0 busy: 3 free GPUs on node 0, 4 on node 1."""
        state = fakes.host_state('hgx', fakes.fake_gpus.eight_gpu_host(),
                                 busy=['0000:18:00.0'], in_placement=True)
        spec = fakes.request_spec(fakes.flavor('anygpu:4'))
        state.allocation_candidates = rc_candidates(state, spec)
        return state, spec

    def test_best_set_first_for_resource_class_alias(self):
        """anygpu:4: the four GPUs of NUMA node 1 come first.

        Placement's own first candidate (address order) takes the three
        free GPUs of node 0 and one of node 1.
        """
        state, spec = self.four_gpus_one_busy()
        numa = {gpu.address: gpu.numa_node
                for gpu in fakes.fake_gpus.eight_gpu_host()}
        placement_first = fakes.candidate_addresses(
            state, state.allocation_candidates[0])
        self.assertEqual({0, 1}, {numa[a] for a in placement_first})

        passed = nova_filters.HostFilterHandler().get_filtered_objects(
            [self.filt], [state], spec)

        self.assertEqual([state], list(passed))
        first = fakes.candidate_addresses(
            state, state.allocation_candidates[0])
        self.assertEqual({1}, {numa[a] for a in first})
        self.assertEqual(4, len(first))

    def test_request_is_a_gpu_demand_of_the_candidates_models(self):
        """The ask becomes a 4-GPU demand of the model Placement gave."""
        state, spec = self.four_gpus_one_busy()
        opts = CONF.gpu_passthrough
        facts = host_view.host_facts(state, opts)
        request, request_ids = request_view.request_facts(
            spec, opts).for_host(facts, host_view.vendor_ids(opts),
                                 state.allocation_candidates)
        self.assertEqual(4, request.gpu_count)
        self.assertEqual((frozenset(['10de:2330']),),
                         tuple(d.models for d in request.demands))
        self.assertEqual((spec.pci_requests.requests[0].request_id,),
                         request_ids)

    def test_strict_numa_required_prunes(self):
        """numa_affinity=required keeps only node-1 sets (24 orderings)."""
        state = fakes.host_state('hgx', fakes.fake_gpus.eight_gpu_host(),
                                 busy=['0000:18:00.0'], in_placement=True)
        spec = fakes.request_spec(fakes.flavor(
            'anygpu:4', gpu_passthrough__numa_affinity='required'))
        state.allocation_candidates = rc_candidates(state, spec)

        self.assertTrue(self.filt.host_passes(state, spec))

        self.assertEqual(24, len(state.allocation_candidates))

    def test_other_providers_are_not_gpu_demands(self):
        """Providers that are no GPU pool here: no GPU demand.

        A NIC resource class, say: the candidates stay as they are.
        """
        state = fakes.host_state('hgx', fakes.fake_gpus.eight_gpu_host(),
                                 in_placement=True)
        spec = fakes.request_spec(fakes.flavor('anygpu:1'))
        nics = [uuidutils.generate_uuid() for _ in range(2)]
        state.allocation_candidates = rc_candidates(state, spec, nics)
        before = list(state.allocation_candidates)

        self.assertTrue(self.filt.host_passes(state, spec))

        self.assertEqual(before, state.allocation_candidates)
