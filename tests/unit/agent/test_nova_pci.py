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
"""The nova_pci publisher: the file as nova itself parses it."""

import json
import os

import fixtures
import nova.conf
from nova.pci import request as pci_request
from nova.pci import whitelist
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslotest import base

from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.agent import nova_pci
from gpu_passthrough_filter.agent import selection
from gpu_passthrough_filter import tags
from gpu_passthrough_filter import traits
from tests.unit.agent import fixtures as agent_fixtures

M = agent_fixtures.MACHINES


class NovaParsesTheFileTest(base.BaseTestCase):
    """Load the generated file with nova's own options and parsers."""

    def setUp(self):
        super().setUp()
        # NOTE: nova asks sysfs whether an address is an SR-IOV PF; there
        # is no such device on the test machine.
        self.useFixture(fixtures.MockPatch(
            'nova.pci.utils.is_physical_function', return_value=False))
        self.nova_conf = self.useFixture(config_fixture.Config(
            nova.conf.CONF))
        pci_request.get_alias_from_config.cache_clear()
        self.addCleanup(pci_request.get_alias_from_config.cache_clear)

    def load(self, text):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'gpu.conf')
        with open(path, 'w') as stream:
            stream.write(text)
        conf = cfg.ConfigOpts()
        nova.conf.pci.register_opts(conf)
        conf([], default_config_files=[path])
        return conf

    def aliases(self, conf, pci_in_placement=False):
        self.nova_conf.config(alias=conf.pci.alias, group='pci')
        self.nova_conf.config(pci_in_placement=pci_in_placement,
                              group='filter_scheduler')
        return pci_request.get_alias_from_config()

    def test_dgx_specs_tags_and_alias(self):
        inventory = agent_fixtures.machine_inventory(self, M.dgx_a100_like)
        conf = self.load(nova_pci.render(inventory))
        specs = whitelist.Whitelist(conf.pci.device_spec).specs
        self.assertEqual(8, len(specs))
        first = specs[0].get_tags()
        self.assertEqual({
            tags.IOMMU_GROUP: '3', tags.ISOLATION: tags.ISOLATED,
            tags.SWITCH: '0000:02:00.0', tags.ROOT: 'pci0000:01',
            tags.NUMA_NODE: '3', tags.MODEL: '10de:20b0',
            tags.GROUP_GPUS: '1'}, first)
        self.assertTrue(specs[0].match({
            'address': '0000:07:00.0', 'vendor_id': '10de',
            'product_id': '20b0', 'parent_addr': None}))
        self.assertFalse(specs[0].match({
            'address': '0000:08:00.0', 'vendor_id': '10de',
            'product_id': '20b0', 'parent_addr': None}))
        self.assertEqual(
            {'gpu-10de-20b0': ('legacy', [{
                'vendor_id': '10de', 'product_id': '20b0',
                'dev_type': 'type-PCI'}])},
            self.aliases(conf))

    def test_pci_in_placement_fields_accepted(self):
        inventory = agent_fixtures.machine_inventory(
            self, M.two_gpus_one_group)
        conf = self.load(nova_pci.render(
            inventory, include_shared_groups=True, report_in_placement=True,
            alias_names={('10de', '2330'): 'h100'}))
        specs = whitelist.Whitelist(conf.pci.device_spec).specs
        self.assertEqual(2, len(specs))
        for spec, gpu in zip(specs, inventory.gpus):
            self.assertEqual(tags.SHARED, spec.get_tags()[tags.ISOLATION])
            self.assertEqual('2', spec.get_tags()[tags.GROUP_GPUS])
            self.assertEqual('CUSTOM_GPU_10DE_2330',
                             spec.get_tags()['resource_class'])
            names = set(spec.get_tags()['traits'].split(','))
            self.assertEqual(
                {traits.DEVICE_SHARED_GROUP,
                 traits.model_trait('10de', '2330')}
                | set(traits.topology_traits(gpu.numa_node, gpu.switch,
                                             gpu.iommu_group)), names)
            # The topology reads back from the traits alone.
            facts = traits.read_device_traits(names)
            self.assertEqual(('10de:2330', gpu.numa_node, 'shared',
                              gpu.iommu_group),
                             (facts['model'], facts['numa_node'],
                              facts['isolation'], facts['iommu_group']))
            self.assertEqual(bool(gpu.switch), bool(facts['switch']))
        aliases = self.aliases(conf, pci_in_placement=True)
        self.assertEqual('CUSTOM_GPU_10DE_2330',
                         aliases['h100'][1][0]['resource_class'])

    def test_every_machine_parses(self):
        """Nova's own parser reads one spec per offered GPU, and it matches.

        Each offered GPU's device (as nova-compute reports it) matches
        exactly one spec; no spec is left over.
        """
        for machine in M.MACHINES:
            inventory = agent_fixtures.machine_inventory(self, machine)
            for shared in (False, True):
                text = nova_pci.render(
                    inventory, include_shared_groups=shared,
                    report_in_placement=shared)
                conf = self.load(text)
                specs = whitelist.Whitelist(conf.pci.device_spec).specs
                offered = selection.offered(selection.choose(
                    inventory, include_shared_groups=shared))
                self.assertEqual(len(offered), len(specs), machine.__name__)
                for gpu in offered:
                    device = {'vendor_id': gpu.vendor,
                              'product_id': gpu.device,
                              'address': gpu.address, 'parent_addr': None}
                    self.assertEqual(
                        1, sum(1 for spec in specs if spec.match(device)),
                        (machine.__name__, gpu.address))
                pci_request.get_alias_from_config.cache_clear()
                # Nova reads one alias per offered model, by the default
                # name.
                names = {nova_pci.default_alias_name(gpu.vendor, gpu.device)
                         for gpu in offered}
                if not names:
                    self.assertNotIn('\nalias = ', text, machine.__name__)
                    continue
                # NOTE: the alias lines of the text itself: a ConfigOpts
                # loaded in a loop here returned an earlier file's aliases.
                self.nova_conf.config(alias=[
                    line.split(' = ', 1)[1] for line in text.splitlines()
                    if line.startswith('alias = ')], group='pci')
                self.assertEqual(names,
                                 set(pci_request.get_alias_from_config()),
                                 machine.__name__)


class RenderTest(base.BaseTestCase):

    def test_left_out_gpu_is_explained_and_absent(self):
        inventory = agent_fixtures.machine_inventory(self, M.intel_pch_no_acs)
        text = nova_pci.render(inventory)
        self.assertIn('0000:03:00.0', text)
        self.assertIn('left out: IOMMU group 7 is shared with 0000:02:00.0, '
                      'which is not a GPU', text)
        self.assertNotIn('device_spec', text)
        self.assertNotIn('alias =', text)

    def test_shared_gpu_group_needs_the_switch(self):
        inventory = agent_fixtures.machine_inventory(
            self, M.two_gpus_one_group)
        self.assertIn('set [nova_pci] include_shared_groups',
                      nova_pci.render(inventory))
        self.assertNotIn('device_spec', nova_pci.render(inventory))
        self.assertEqual(2, nova_pci.render(
            inventory, include_shared_groups=True).count('device_spec = '))

    def test_no_gpu_says_none(self):
        inventory = agent_fixtures.machine_inventory(
            self, M.no_gpu_virtio_vm)
        text = nova_pci.render(inventory)
        self.assertIn('GPUs found (0)', text)
        self.assertIn('(none)', text)

    def test_unknown_never_offered(self):
        inventory = agent_fixtures.machine_inventory(self, M.dgx_a100_like)
        for gpu in inventory.gpus:
            gpu.isolation = tags.UNKNOWN
            gpu.isolation_reason = 'IOMMU groups not exposed'
        text = nova_pci.render(inventory, include_shared_groups=True)
        self.assertNotIn('device_spec', text)
        self.assertEqual(8, text.count(
            'left out: isolation unknown: IOMMU groups not exposed'))

    def test_deterministic_whatever_the_input_order(self):
        inventory = agent_fixtures.machine_inventory(self, M.dgx_a100_like)
        text = nova_pci.render(inventory)
        inventory.gpus.reverse()
        self.assertEqual(text, nova_pci.render(inventory))

    def test_entries_are_sorted_json(self):
        inventory = agent_fixtures.machine_inventory(self, M.dgx_a100_like)
        specs = [json.loads(line.split(' = ', 1)[1])
                 for line in nova_pci.render(inventory).splitlines()
                 if line.startswith('device_spec = ')]
        addresses = [spec['address'] for spec in specs]
        self.assertEqual(sorted(addresses), addresses)

    def test_alias_names_option(self):
        self.assertEqual({('10de', '2330'): 'h100'},
                         nova_pci.parse_alias_names(['10DE:2330 = h100']))
        for bad in ('10de=h100', '10de:2330=', 'nvidia:h100=x', 'h100'):
            self.assertRaises(exception.ConfigError,
                              nova_pci.parse_alias_names, [bad])


class PublisherTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.conf = agent_fixtures.agent_conf(self, publishers=['nova_pci'])
        self.path = self.conf.nova_pci.output_file
        self.publisher = nova_pci.NovaPciPublisher(self.conf)

    def test_unchanged_inventory_leaves_the_file_alone(self):
        inventory = agent_fixtures.machine_inventory(self, M.dgx_a100_like)
        first = self.publisher.publish(inventory)
        self.assertTrue(first.changed)
        self.assertTrue(first.restart_needed)
        before = os.stat(self.path)
        with open(self.path, 'rb') as stream:
            content = stream.read()
        again = agent_fixtures.machine_inventory(self, M.dgx_a100_like)
        second = self.publisher.publish(again)
        self.assertFalse(second.changed)
        self.assertFalse(second.restart_needed)
        after = os.stat(self.path)
        self.assertEqual((before.st_ino, before.st_mtime_ns),
                         (after.st_ino, after.st_mtime_ns))
        with open(self.path, 'rb') as stream:
            self.assertEqual(content, stream.read())

    def test_changed_inventory_replaces_the_file_atomically(self):
        self.publisher.publish(
            agent_fixtures.machine_inventory(self, M.dgx_a100_like))
        inode = os.stat(self.path).st_ino
        result = self.publisher.publish(
            agent_fixtures.machine_inventory(self, M.pcie_8gpu_rtx4090))
        self.assertTrue(result.restart_needed)
        self.assertIn('restart nova-compute', result.summary)
        # A new file renamed over the old one, no temporary file left.
        self.assertNotEqual(inode, os.stat(self.path).st_ino)
        self.assertEqual(['nova-pci.conf'],
                         [name for name in os.listdir(
                             os.path.dirname(self.path))
                          if name.startswith(('nova-pci', '.nova-pci'))])
        with open(self.path) as stream:
            self.assertIn('"gpupt_model": "10de:2684"', stream.read())

    def test_unwritable_destination_is_an_error(self):
        conf = agent_fixtures.agent_conf(
            self, nova_pci={'output_file': '/nonexistent/dir/gpu.conf'})
        inventory = agent_fixtures.machine_inventory(self, M.dgx_a100_like)
        exc = self.assertRaises(exception.OutputError,
                                nova_pci.NovaPciPublisher(conf).publish,
                                inventory)
        self.assertIn('/nonexistent/dir/gpu.conf', str(exc))


class MissingDirectoryTest(base.BaseTestCase):

    def test_missing_directory_is_named_not_a_temporary_file(self):
        """Before: "No such file or directory: .../.gpu-passthrough.conf.x"."""
        root = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(root, 'nova.conf.d', 'gpu-passthrough.conf')
        exc = self.assertRaises(exception.OutputError,
                                nova_pci.write_if_changed, path, 'x\n')
        self.assertIn('directory %s does not exist'
                      % os.path.dirname(path), str(exc))
        self.assertNotIn('.gpu-passthrough.conf.', str(exc))
