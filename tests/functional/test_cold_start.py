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
"""Day one of a new GPU cloud: small guests first, then a big one.

Real nova (API, conductor, scheduler, computes on the fake libvirt driver,
Placement). Two free 8-GPU hosts; six 1-GPU servers booted one by one,
then an 8-GPU server. A just-started scheduler has learned only 1-GPU
requests, for which every placement looks the same; nova's RAM and CPU
weighers then spread the small servers over both hosts and the 8-GPU
server gets NoValidHost. The weigher's cold-start prior packs them on one
host, and the 8-GPU server takes the other. Both PCI modes, each with the
project's recommended pipeline and default options.
"""

from tests import fake_gpus
from tests.functional import base
from tests.functional import test_placement_scale


class ColdStartMixin(object):

    def test_small_servers_first_leave_a_whole_host(self):
        for name in ('left', 'right'):
            self.start_gpu_compute(name, fake_gpus.eight_gpu_host())
        one = self.create_gpu_flavor('h100:1', vcpu=1)
        hosts = [self.server_host(self.boot_server(one)) for _ in range(6)]
        self.assertEqual(1, len(set(hosts)), hosts)

        eight = self.create_gpu_flavor('h100:8', vcpu=1)
        server = self.boot_server(eight)
        self.assertNotEqual(hosts[0], self.server_host(server))
        self.assertEqual([], self.free_gpu_addresses(
            self.server_host(server)))


class LegacyPCIColdStartTest(ColdStartMixin, base.GPUServersTestBase):
    EXTRA_FILTERS = ('GPUPassthroughFilter',)
    EXTRA_AVAILABLE_FILTERS = (base.PROJECT_ALL_FILTERS,)
    WEIGHT_CLASSES = ('nova.scheduler.weights.all_weighers',
                      'gpu_passthrough_filter.scheduler.all_weighers')


class PCIInPlacementColdStartTest(
        ColdStartMixin, test_placement_scale.RecommendedPlacementTestBase):
    pass
