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
"""The cloud-level scenarios of :mod:`tests.scenario` in the in-process Nova.

The same test methods run in Zuul against devstack
(:mod:`tests.scenario.test_devstack`); here they talk, through
openstacksdk and wsgi-intercept (:mod:`tests.functional.sdk_cloud`), to
Nova's in-process API, conductor, scheduler with GPUPassthroughFilter,
fake-libvirt computes with fake GPUs, and Placement, with PCI devices
tracked in Placement.

The cloud, built anew for each test (nova's base starts its services per
test, so the suite stays at a handful of tests):

* ``gpu-isolated``: two H100, each alone in its IOMMU group, one per NUMA
  node: room for two one-GPU servers under strict isolation.
* ``gpu-shared``: two H100 sharing one IOMMU group: nova alone would give
  each of them to a one-GPU server; strict isolation gives the group only
  whole, to a two-GPU server.

No GPU of the cloud sits under a PCIe switch, so a two-GPU server that
asks for ``gpu_passthrough:locality=switch`` fits nowhere although both
hosts have two free GPUs.

For the traits scenario the agent runs as it does on a compute node, with
one difference: its sysfs is a fake tree (:mod:`gpu_passthrough_filter.
testing.fake_sysfs`) describing the same GPUs the fake libvirt shows nova.
The real reader discovers it and the real ``placement`` publisher writes
the traits into the in-process Placement, through the same openstacksdk
connection the scenarios use.
"""

import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from gpu_passthrough_filter.agent import placement as placement_publisher
from gpu_passthrough_filter import conf as project_conf
from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter.testing import fake_sysfs
from gpu_passthrough_filter import traits

from tests import fake_gpus
from tests.functional import base
from tests.functional import sdk_cloud
from tests.scenario import scenarios

FakeGPU = fake_gpus.FakeGPU

#: IOMMU group of the two GPUs of ``gpu-shared``.
SHARED_GROUP = 40

#: The agent-owned traits each host must carry, written out by hand:
#: ``gpu-shared`` offers no GPU under the agent's default (shared groups
#: left out), so it is not passthrough-ready and names no model.
EXPECTED_TRAITS = {
    'gpu-isolated': {traits.IOMMU_ENABLED, traits.PASSTHROUGH_READY,
                     'CUSTOM_GPU_PT_MODEL_10DE_2330'},
    'gpu-shared': {traits.IOMMU_ENABLED},
}


def _root_port(address, children):
    return fake_sysfs.RootPort(address, children=children)


#: The hosts' PCI trees as the agent reads them from sysfs: the same GPU
#: addresses, NUMA nodes and IOMMU groups as the fake libvirt hosts.
SYSFS_HOSTS = {
    'gpu-isolated': fake_sysfs.Host(
        numa_nodes=[fake_sysfs.NumaNode(0, cpus='0-3'),
                    fake_sysfs.NumaNode(1, cpus='4-7')],
        root_complexes=[
            fake_sysfs.RootComplex('0000:80', numa_node=0, children=[
                _root_port('0000:80:01.0', fake_sysfs.nvidia_gpu(
                    '0000:81:00.0'))]),
            fake_sysfs.RootComplex('0000:c0', numa_node=1, children=[
                _root_port('0000:c0:01.0', fake_sysfs.nvidia_gpu(
                    '0000:c1:00.0'))]),
        ]),
    'gpu-shared': fake_sysfs.Host(
        numa_nodes=[fake_sysfs.NumaNode(0, cpus='0-3'),
                    fake_sysfs.NumaNode(1, cpus='4-7')],
        root_complexes=[
            fake_sysfs.RootComplex('0000:80', numa_node=0, children=[
                _root_port('0000:80:01.0', fake_sysfs.nvidia_gpu(
                    '0000:81:00.0', iommu_group=SHARED_GROUP)),
                _root_port('0000:80:02.0', fake_sysfs.nvidia_gpu(
                    '0000:82:00.0', iommu_group=SHARED_GROUP)),
            ]),
        ]),
}


class InProcessScenarioTest(scenarios.GPUScenarios,
                            base.GPUServersTestBase):
    """The scenarios against Nova's in-process services."""

    EXTRA_FILTERS = ('GPUPassthroughFilter',)
    EXTRA_AVAILABLE_FILTERS = (base.PROJECT_ALL_FILTERS,)
    PCI_IN_PLACEMENT = True

    # The in-process services answer at once (RPC casts are calls).
    SERVER_POLL_INTERVAL = 0.1
    SERVER_TIMEOUT = 30

    #: Where each one-GPU server may land, and how many.
    ROOM = {'gpu-isolated': 2, 'gpu-shared': 0}

    gpu_alias = fake_gpus.H100.alias

    def setUp(self):
        super().setUp()
        self.start_gpu_compute('gpu-isolated', [
            FakeGPU('0000:81:00.0', numa_node=0),
            FakeGPU('0000:c1:00.0', numa_node=1),
        ])
        self.start_gpu_compute('gpu-shared', [
            FakeGPU('0000:81:00.0', iommu_group=SHARED_GROUP),
            FakeGPU('0000:82:00.0', iommu_group=SHARED_GROUP),
        ])
        self.conn = sdk_cloud.connect(self.api_fixture, self.placement_fixture)

    # -- hooks of the scenarios --------------------------------------------

    def gpu_room(self):
        return dict(self.ROOM)

    def impossible_gpu_request(self):
        return scenarios.GPURequest(
            2, {'gpu_passthrough:locality': 'switch'})

    def expected_host_traits(self):
        """Run the agent once per host; expect :data:`EXPECTED_TRAITS`."""
        for host, description in sorted(SYSFS_HOSTS.items()):
            self._run_agent(host, description)
        return {host: set(names) for host, names in EXPECTED_TRAITS.items()}

    def _run_agent(self, host, description):
        root = self.useFixture(fixtures.TempDir()).path
        inventory = sysfs.read_inventory(description.write(root),
                                         hostname=host)
        conf = cfg.ConfigOpts()
        project_conf.register_agent_opts(conf)
        self.useFixture(config_fixture.Config(conf)).config(
            host=host, group='agent')
        publisher = placement_publisher.PlacementPublisher(
            conf, connection=self.conn)
        self.assertTrue(publisher.publish(inventory).changed)

    def server_image(self):
        # The image nova's own functional helpers boot from (GlanceFixture).
        return self._build_server()['imageRef']

    def assert_server_gpu_count(self, server, count):
        """Also: Placement's view (what the scenario reads) is nova's."""
        super().assert_server_gpu_count(server, count)
        host = server.compute_host
        self.assertEqual(
            ['%s_%s' % (host, address.upper())
             for address in self.server_pci_addresses(server.id)],
            self.server_gpu_providers(server))

    # -- in-process checks beyond what a cloud shows from outside ----------

    def test_servers_land_per_policy(self):
        """And: ``gpu-shared`` kept both GPUs, nova alone would give them.

        After the scenario, the one-GPU server refused by strict isolation
        lands on ``gpu-shared`` once the flavor says ``isolation=any``.
        """
        super().test_servers_land_per_policy()
        self.assertEqual(['0000:81:00.0', '0000:82:00.0'],
                         self.free_gpu_addresses('gpu-shared'))
        self.assertEqual([], self.free_gpu_addresses('gpu-isolated'))

        server = self.boot_and_wait(self.make_gpu_flavor(scenarios.GPURequest(
            1, {'gpu_passthrough:isolation': 'any'})), 'ACTIVE')
        self.assertEqual('gpu-shared', server.compute_host)

    def test_impossible_policy_gives_no_valid_host(self):
        """And: without the locality spec, the same request is placed.

        So the project's policy refused it, not a lack of GPUs.
        """
        super().test_impossible_policy_gives_no_valid_host()
        request = self.impossible_gpu_request()
        server = self.boot_and_wait(self.make_gpu_flavor(
            scenarios.GPURequest(request.count)), 'ACTIVE')
        self.assert_server_gpu_count(server, request.count)
