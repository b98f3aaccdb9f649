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
"""A cordoned GPU in real Nova with PCI in Placement: never chosen, back
after uncordon, no restart, the guest on it untouched.

The agent's placement publisher, through openstacksdk, against the test's
Placement; nova-compute's resource tracker (its periodic update, then a
restart) must not undo the hold.
"""

from oslo_config import cfg
from oslo_config import fixture as config_fixture

from gpu_passthrough_filter.agent import cordon
from gpu_passthrough_filter.agent import placement as placement_publisher
from gpu_passthrough_filter import conf as project_conf
from gpu_passthrough_filter.inventory import model
from gpu_passthrough_filter import tags
from tests import fake_gpus
from tests.functional import sdk_cloud
from tests.functional import test_placement_scale

HOST = 'gpu-host'
X, Y = '0000:18:00.0', '0000:2a:00.0'


class CordonInPlacementTest(test_placement_scale.RecommendedPlacementTestBase):

    def setUp(self):
        super().setUp()
        self.gpus = fake_gpus.eight_gpu_host()[:2]
        self.assertEqual([X, Y], [gpu.address for gpu in self.gpus])
        self.start_gpu_compute(HOST, self.gpus)
        self.one = self.create_gpu_flavor('h100:1', vcpu=1)
        conf = cfg.ConfigOpts()
        project_conf.register_agent_opts(conf)
        fixture = self.useFixture(config_fixture.Config(conf))
        fixture.config(host=HOST, group='agent')
        fixture.config(report_in_placement=True, group='nova_pci')
        self.publisher = placement_publisher.PlacementPublisher(
            conf, connection=sdk_cloud.connect(self.api_fixture,
                                               self.placement_fixture))

    def publish(self, *cordoned):
        """One agent cycle on this host with ``cordoned`` GPUs."""
        inventory = model.HostInventory(HOST, iommu_enabled=True, gpus=[
            model.GPU(gpu.address, vendor=gpu.model.vendor_id,
                      device=gpu.model.product_id, isolation=tags.ISOLATED,
                      iommu_group=str(gpu.iommu_group), vfio_ready=True)
            for gpu in fake_gpus.assign_iommu_groups(self.gpus)])
        return self.publisher.publish(cordon.apply(inventory, {
            address: cordon.Cordon(address, 'test', 0.0)
            for address in cordoned}))

    def reserved(self):
        providers = self.gpu_provider_uuids(HOST)
        found = {}
        for address, uuid in sorted(providers.items()):
            inventory, = self._get_provider_inventory(uuid).values()
            found[address] = inventory['reserved']
        return found

    def test_cordon_uncordon_live(self):
        first = self.boot_server(self.one)
        on, = self.server_pci_addresses(first)
        free = Y if on == X else X

        self.publish(X, Y)
        self.assertEqual({X: 1, Y: 1}, self.reserved())
        self.boot_server_expecting_no_valid_host(self.one)
        # The guest on a cordoned GPU keeps running and keeps its GPU.
        self.assertEqual('ACTIVE', self.api.get_server(first['id'])['status'])
        self.assert_server_gpus(first, HOST, [on])

        # nova-compute's resource tracker leaves the hold alone: its
        # periodic update, then a restart (which re-reads Placement).
        self._run_periodics()
        self.assertEqual({X: 1, Y: 1}, self.reserved())
        self.restart_gpu_compute(HOST)
        self._run_periodics()
        self.assertEqual({X: 1, Y: 1}, self.reserved())
        self.boot_server_expecting_no_valid_host(self.one)

        # Uncordon the free GPU: the next server takes it, no restart.
        self.publish(on)
        self.assertEqual({on: 1, free: 0}, self.reserved())
        second = self.boot_server(self.one)
        self.assert_server_gpus(second, HOST, [free])

        # The cordoned GPU freed by its guest stays out of service...
        self._delete_server(first)
        self.boot_server_expecting_no_valid_host(self.one)
        # ...until it is uncordoned.
        self.publish()
        self.assertEqual({X: 0, Y: 0}, self.reserved())
        third = self.boot_server(self.one)
        self.assert_server_gpus(third, HOST, [on])
