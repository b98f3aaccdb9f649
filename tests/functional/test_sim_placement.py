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
"""The simulator's Placement emulation against nova's real Placement.

``gpu_passthrough_filter.sim.placement`` answers ``GET
/allocation_candidates`` itself, so that a 1,000-host simulation needs no
database. Here a real nova-compute reports its GPUs to the real Placement
of nova's functional framework (PCI in Placement), nova's own scheduler
code builds the query (``resources_from_request_spec``) and its report
client asks Placement; the distinct GPU sets of the answer must be the
emulation's, before and after a server took GPUs.

Only the sets, not their order: Placement's order of the candidates of one
host is neither address nor provider-creation order and changed between
two runs of this test, so the emulation's address order is one arbitrary
order among those nova may see (doc/source/admin/simulator.rst).
"""

from nova import objects
from nova.pci import request as pci_request
from nova.scheduler import utils as scheduler_utils
from oslo_utils import uuidutils

from gpu_passthrough_filter.sim import placement as sim_placement
from tests.functional import base
from tests.functional import fake_gpus

FakeGPU = fake_gpus.FakeGPU


class CandidateOrderTest(base.GPUServersTestBase):

    PCI_IN_PLACEMENT = True

    def _spec(self, flavor_id):
        flavor = objects.Flavor.get_by_flavor_id(self.ctxt, flavor_id)
        return objects.RequestSpec.from_components(
            self.ctxt, uuidutils.generate_uuid(), {'properties': {}},
            flavor, None, pci_request.get_pci_requests_from_flavor(flavor),
            {}, None, None)

    def _real_sets(self, hostname, spec):
        """Distinct GPU sets of Placement's answer, first appearance order."""
        resources = scheduler_utils.resources_from_request_spec(
            self.ctxt, spec, self.scheduler.manager.host_manager,
            enable_pinning_translate=True)
        allocation_requests, _, _ = (
            self.scheduler.manager.placement_client.get_allocation_candidates(
                self.ctxt, resources))
        addresses = {rp: address for address, rp
                     in self.gpu_provider_uuids(hostname).items()}
        return _distinct_sets(allocation_requests, addresses)

    def _emulated_sets(self, hostname, spec):
        state = self.scheduler_host_state(hostname)
        candidates = sim_placement._pci_candidates(state, spec, {}, 1000)
        addresses = {pool['rp_uuid']: pool['address']
                     for pool in state.pci_stats.pools}
        return _distinct_sets(candidates, addresses)

    def test_emulation_gives_placements_sets(self):
        """4 GPUs, 2 asked: the 6 pairs; after a 1-GPU server, the 3 left.

        The GPUs are reported out of address order.
        """
        self.start_gpu_compute('host1', [
            FakeGPU('0000:c1:00.0', numa_node=1),
            FakeGPU('0000:81:00.0', numa_node=0),
            FakeGPU('0000:c2:00.0', numa_node=1),
            FakeGPU('0000:82:00.0', numa_node=0)])
        pair = self._spec(self.create_gpu_flavor('h100:2'))

        real = self._real_sets('host1', pair)
        self.assertEqual(6, len(real))
        self.assertEqual(set(real), set(self._emulated_sets('host1', pair)))

        server = self.boot_server(self.create_gpu_flavor('h100:1'))
        taken = set(self.server_pci_addresses(server))
        real = self._real_sets('host1', pair)
        self.assertEqual(3, len(real))
        self.assertFalse(any(taken & s for s in real))
        self.assertEqual(set(real), set(self._emulated_sets('host1', pair)))


def _distinct_sets(allocation_requests, addresses):
    """Ordered distinct sets of PCI addresses that the requests map to."""
    sets = []
    for request in allocation_requests:
        gpus = frozenset(addresses[rp]
                         for group, rps in request['mappings'].items()
                         if group for rp in rps if rp in addresses)
        if gpus not in sets:
            sets.append(gpus)
    return sets
