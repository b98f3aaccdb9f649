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
"""The scenarios of :mod:`tests.scenario.scenarios` against a real cloud.

Run with ``tox -e scenario`` and ``OS_CLOUD`` naming an admin cloud of
``clouds.yaml`` (devstack writes ``devstack-admin``). What the cloud can
give is told through environment variables; the defaults describe the
devstack plugin's fake-GPU mode (``GPU_PASSTHROUGH_FAKE_GPUS=True``), where
the agent reads a generated sysfs tree and nova-compute sees the real,
GPU-less machine: no GPU server can start, every GPU request ends in
NoValidHost, and the agent's traits reach Placement.

``GPU_PT_SCENARIO_ALIAS``
    The ``[pci] alias`` name flavors use (default ``gpu-10de-26b9``: the
    agent's default name for the L40S of the fake topology).
``GPU_PT_SCENARIO_ROOM``
    ``host=n,host=n``: how many one-GPU servers each hypervisor can take
    under the default strict isolation (default: none anywhere).
``GPU_PT_SCENARIO_PCI_IN_PLACEMENT``
    ``true`` when nova tracks PCI devices in Placement (default false).
``GPU_PT_SCENARIO_IMAGE``
    Image name or id to boot from (default: the first active image).
``GPU_PT_SCENARIO_SYSFS_ROOT``
    The sysfs root the agent reads (default: the devstack plugin's
    fake-GPU tree, ``/opt/stack/data/gpu-passthrough-filter/fake-sysfs``).
    Every compute is expected to carry the traits the agent's rules give
    for that tree; on a multi-node cloud every node must read the same
    topology (as the Zuul job sets it up).
``GPU_PT_SCENARIO_TRAITS``
    Comma-separated agent traits every compute must carry, instead of
    deriving them from ``GPU_PT_SCENARIO_SYSFS_ROOT``.
"""

import os

import openstack
import testtools

from gpu_passthrough_filter.agent import placement as placement_publisher
from gpu_passthrough_filter.inventory import sysfs

from tests.scenario import scenarios

DEFAULT_ALIAS = 'gpu-10de-26b9'
DEFAULT_SYSFS_ROOT = '/opt/stack/data/gpu-passthrough-filter/fake-sysfs'
_TRUE = ('1', 'true', 'yes', 'on')


def _env(name, default=None):
    return os.environ.get(name) or default


def parse_room(text):
    """``host=n,host=n`` into ``{host: n}``.

    :param text: the value of ``GPU_PT_SCENARIO_ROOM`` (may be empty).
    :raises ValueError: an entry is not ``host=integer``.
    """
    room = {}
    for entry in filter(None, (part.strip() for part in text.split(','))):
        host, sep, count = entry.rpartition('=')
        if not sep or not host:
            raise ValueError('GPU_PT_SCENARIO_ROOM entry %r is not host=n'
                             % entry)
        room[host.strip()] = int(count)
    return room


class DevstackScenarioTest(scenarios.GPUScenarios, testtools.TestCase):
    """The scenarios against the cloud named by ``OS_CLOUD``."""

    PCI_IN_PLACEMENT = _env(
        'GPU_PT_SCENARIO_PCI_IN_PLACEMENT', '').lower() in _TRUE

    gpu_alias = _env('GPU_PT_SCENARIO_ALIAS', DEFAULT_ALIAS)

    def setUp(self):
        super().setUp()
        cloud = _env('OS_CLOUD')
        if not cloud:
            self.fail('OS_CLOUD is not set: name the admin cloud of '
                      'clouds.yaml to test (devstack: devstack-admin)')
        self.conn = openstack.connect(cloud=cloud)
        self.addCleanup(self.conn.close)

    def gpu_room(self):
        return parse_room(_env('GPU_PT_SCENARIO_ROOM', ''))

    def impossible_gpu_request(self):
        # More GPUs in one server than any host has room for.
        most = max(self.gpu_room().values(), default=0)
        return scenarios.GPURequest(most + 1)

    def server_image(self):
        name = _env('GPU_PT_SCENARIO_IMAGE')
        if name:
            return self.conn.image.find_image(name, ignore_missing=False).id
        images = list(self.conn.image.images(status='active'))
        self.assertTrue(images, 'the cloud has no active image')
        return images[0].id

    def expected_host_traits(self):
        wanted = _env('GPU_PT_SCENARIO_TRAITS')
        if wanted:
            names = {name.strip() for name in wanted.split(',')
                     if name.strip()}
        else:
            inventory = sysfs.read_inventory(
                _env('GPU_PT_SCENARIO_SYSFS_ROOT', DEFAULT_SYSFS_ROOT))
            names = placement_publisher.desired_traits(inventory)
        return {hypervisor.name: set(names)
                for hypervisor in self.conn.compute.hypervisors()}
