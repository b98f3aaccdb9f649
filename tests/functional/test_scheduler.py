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
"""GPUPassthroughFilter, GPUPassthroughWeigher and the extra-spec validators
inside a real in-process Nova.

Servers are booted through the API; each test asserts the host and the
exact PCI addresses every server got. Each test starts real nova services
(seconds each on a small CI machine), so each proves several things.
"""

from nova.tests.functional.api import client

from tests import fake_gpus
from tests.functional import base

FakeGPU = fake_gpus.FakeGPU

#: Only the project's weigher: what the tests see is its doing, not
#: nova's PCIWeigher (which also keeps plain guests off PCI hosts).
OUR_WEIGHERS = ('gpu_passthrough_filter.scheduler.all_weighers',)


class SchedulerTestBase(base.GPUServersTestBase):
    EXTRA_FILTERS = ('GPUPassthroughFilter',)
    EXTRA_AVAILABLE_FILTERS = (base.PROJECT_ALL_FILTERS,)
    WEIGHT_CLASSES = OUR_WEIGHERS


class LegacyPCISchedulerTest(SchedulerTestBase):
    """``[filter_scheduler] pci_in_placement = False``."""

    def test_isolation_and_no_valid_host_reason(self):
        """Strict: the only server fits 'isolated'; 'unknown' never.

        The second H100 server finds only the GPU of unproven isolation and
        gets NoValidHost; the scheduler log says why, with numbers.
        """
        self.start_gpu_compute('unknown', [
            FakeGPU('0000:81:00.0', isolation='unknown')])
        self.start_gpu_compute('isolated', [FakeGPU('0000:c1:00.0',
                                                    numa_node=1)])
        flavor = self.create_gpu_flavor('h100:1')
        log = self.capture_scheduler_log()

        server = self.boot_server(flavor)
        self.assert_server_gpus(server, 'isolated', ['0000:c1:00.0'])

        self.boot_server_expecting_no_valid_host(flavor)
        self.assertIn(
            'GPUPassthroughFilter rejected host unknown: needs 1 GPU of '
            '10de:2330; 0 usable under strict isolation (1 free GPUs: 1 of '
            'unknown isolation', log.output)
        self.assertEqual(['0000:81:00.0'], self.free_gpu_addresses('unknown'))

    def test_bad_extra_spec_refused_and_plain_guest_kept_off(self):
        """API 400 names the allowed values; a plain guest lands on 'cpu'.

        Only the project's weigher runs, and it keeps the guest without
        GPUs off 'gpu' (8 free GPUs) while 'cpu' exists.
        """
        self.start_gpu_compute('gpu', fake_gpus.eight_gpu_host())
        self.start_gpu_compute('cpu', [])
        flavor = self.create_gpu_flavor(None)

        error = self.assertRaises(
            client.OpenStackApiException, self.admin_api.post_extra_spec,
            flavor, {'extra_specs': {'gpu_passthrough:locality': 'sideways'}})
        self.assertEqual(400, error.response.status_code)
        self.assertIn("'sideways' is not one of: switch, numa, any",
                      error.response.text)

        server = self.boot_server(flavor)
        self.assert_server_gpus(server, 'cpu', [])

    def test_plain_guests_leave_the_gpu_reserve(self):
        """The 2nd plain guest would eat the free GPUs' reserve: NoValidHost.

        'gpu' has 2 H100s; the reserve per free GPU is set so that the 2
        free GPUs keep all but 4 of the host's vCPUs (as the scheduler
        counts them, allocation ratio included). A plain guest of 4 vCPUs
        fits beside the reserve; a second one would leave less and is
        refused, with the numbers in the scheduler log; a GPU guest is not
        held back and still lands.
        """
        self.start_gpu_compute('gpu', [
            FakeGPU('0000:81:00.0', numa_node=0),
            FakeGPU('0000:c1:00.0', numa_node=1)])
        state = self.scheduler_host_state('gpu')
        vcpus = state.vcpus_total * state.cpu_allocation_ratio
        self.flags(reserved_vcpus_per_free_gpu=(vcpus - 4) / 2.0,
                   group='gpu_passthrough')
        log = self.capture_scheduler_log()
        plain = self.create_gpu_flavor(None, vcpu=4)

        self.assert_server_gpus(self.boot_server(plain), 'gpu', [])
        self.boot_server_expecting_no_valid_host(plain)
        self.assertIn(
            'GPUPassthroughFilter rejected host gpu: a guest without GPUs '
            'would leave %g vCPUs for 2 free GPUs, which keep %g'
            % (vcpus - 8, vcpus - 4), log.output)

        gpu_guest = self.boot_server(self.create_gpu_flavor('h100:1',
                                                            vcpu=2))
        self.assertEqual('gpu', self.server_host(gpu_guest))
        self.assertEqual(1, len(self.free_gpu_addresses('gpu')))


class PCIInPlacementSchedulerTest(SchedulerTestBase):
    """``pci_in_placement = True``: the filter picks the exact GPUs."""

    PCI_IN_PLACEMENT = True

    def test_two_gpu_servers_get_same_numa_pairs(self):
        """Two 2-GPU servers on one host: each gets a same-NUMA pair.

        NUMA nodes alternate with the addresses, so Placement's own order
        (by provider) often pairs GPUs across nodes; the filter reorders
        the candidates so that {81, 84} (node 0) and {82, 83} (node 1)
        are chosen, in a multi-create request.
        """
        self.start_gpu_compute('host1', [
            FakeGPU('0000:81:00.0', numa_node=0),
            FakeGPU('0000:82:00.0', numa_node=1),
            FakeGPU('0000:83:00.0', numa_node=1),
            FakeGPU('0000:84:00.0', numa_node=0),
        ])
        flavor = self.create_gpu_flavor('h100:2')

        servers = self.boot_servers(flavor, 2)

        pairs = sorted(self.server_pci_addresses(s) for s in servers)
        self.assertEqual([['0000:81:00.0', '0000:84:00.0'],
                          ['0000:82:00.0', '0000:83:00.0']], pairs)
        self.assertEqual({'host1'}, {self.server_host(s) for s in servers})
