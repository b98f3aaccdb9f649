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
"""The inventory's JSON form: lossless, versioned, and strict on input."""

import json

from oslotest import base

from gpu_passthrough_filter.inventory import model
from gpu_passthrough_filter import tags


def sample_inventory():
    """An inventory with every field set to a non-default value."""
    return model.HostInventory(
        hostname='compute-7',
        iommu_enabled=True,
        numa_nodes=[model.NumaNode(0, [0, 1, 2, 3], 1024),
                    model.NumaNode(1, [4, 5, 6, 7], None)],
        functions=[
            model.PciFunction(
                address='0000:41:00.0', vendor='10de', device='2330',
                subsystem_vendor='10de', subsystem_device='16c1',
                class_code='030200', numa_node=1, local_cpus=[4, 5, 6, 7],
                iommu_group='12', driver='vfio-pci',
                parents=['pci0000:40', '0000:40:01.1', '0000:41:00.0'],
                cur_link_speed='32.0 GT/s PCIe', cur_link_width=16,
                max_link_speed='32.0 GT/s PCIe', max_link_width=16,
                bar_sizes=[16777216, 0, 2 ** 37, 0, 33554432, 0],
                reset_methods=['flr', 'bus'], sriov_totalvfs=None,
                physfn=None),
            model.PciFunction(address='0000:41:00.1', physfn='0000:41:00.0',
                              sriov_totalvfs=0),
        ],
        iommu_groups={'12': ['0000:41:00.0'], '13': ['0000:41:00.1']},
        gpus=[model.GPU(
            address='0000:41:00.0', functions=['0000:41:00.0'],
            name='NVIDIA Corporation GH100 [H100 SXM5 80GB]', vendor='10de',
            device='2330', numa_node=1, iommu_group='12',
            isolation=tags.ISOLATED, isolation_reason='alone',
            vfio_ready=True, driver='vfio-pci', switch='0000:41:00.0',
            root_port='0000:40:01.1', root_complex='pci0000:40')],
        errors=[model.ItemError('0000:42:00.0', 'class', 'garbage')])


class RoundTripTest(base.BaseTestCase):

    def test_json_round_trip_is_lossless(self):
        inventory = sample_inventory()
        self.assertEqual(inventory,
                         model.HostInventory.from_json(inventory.to_json()))

    def test_dict_round_trip_is_lossless(self):
        inventory = sample_inventory()
        self.assertEqual(inventory,
                         model.HostInventory.from_dict(inventory.to_dict()))

    def test_document_carries_schema_version(self):
        document = json.loads(sample_inventory().to_json())
        self.assertEqual(model.SCHEMA_VERSION, document['schema_version'])

    def test_older_document_without_optional_fields_reads(self):
        document = {'schema_version': 1, 'hostname': 'h'}
        inventory = model.HostInventory.from_dict(document)
        self.assertEqual([], inventory.gpus)
        self.assertFalse(inventory.iommu_enabled)

    def test_lookup_by_address(self):
        inventory = sample_inventory()
        self.assertEqual('030200',
                         inventory.function('0000:41:00.0').class_code)
        self.assertEqual('10de:2330', inventory.gpu('0000:41:00.0').model)
        self.assertIsNone(inventory.gpu('0000:41:00.1'))


class FormatErrorTest(base.BaseTestCase):

    def _document(self, **changes):
        document = sample_inventory().to_dict()
        document.update(changes)
        return document

    def _assert_refused(self, document, *fragments):
        error = self.assertRaises(model.InventoryFormatError,
                                  model.HostInventory.from_dict, document)
        for fragment in fragments:
            self.assertIn(fragment, str(error))

    def test_newer_schema_refused_with_upgrade_hint(self):
        self._assert_refused(self._document(schema_version=2),
                             'schema_version 2 is newer', 'upgrade')

    def test_missing_version_refused(self):
        document = self._document()
        del document['schema_version']
        self._assert_refused(document, 'no valid schema_version')

    def test_non_integer_version_refused(self):
        self._assert_refused(self._document(schema_version='1'),
                             'no valid schema_version')

    def test_not_json(self):
        error = self.assertRaises(model.InventoryFormatError,
                                  model.HostInventory.from_json, '{"a": ')
        self.assertIn('not JSON', str(error))

    def test_not_an_object(self):
        error = self.assertRaises(model.InventoryFormatError,
                                  model.HostInventory.from_json, '[1, 2]')
        self.assertIn('JSON object', str(error))

    def test_wrong_type_names_the_place(self):
        document = self._document()
        document['gpus'][0]['numa_node'] = 'one'
        self._assert_refused(document, 'inventory.gpus[0].numa_node',
                             'expected an integer')

    def test_bool_is_not_an_int(self):
        document = self._document()
        document['functions'][0]['cur_link_width'] = True
        self._assert_refused(document,
                             'inventory.functions[0].cur_link_width')

    def test_unknown_field_refused(self):
        document = self._document()
        document['numa_nodes'][0]['colour'] = 'blue'
        self._assert_refused(document, 'inventory.numa_nodes[0]',
                             'unknown field(s) colour')

    def test_missing_required_field_refused(self):
        document = self._document()
        del document['gpus'][0]['address']
        self._assert_refused(document, "missing required field 'address'")

    def test_unknown_verdict_refused(self):
        document = self._document()
        document['gpus'][0]['isolation'] = 'probably'
        self._assert_refused(document, "'probably' is not one of")

    def test_group_members_must_be_a_list(self):
        document = self._document(iommu_groups={'12': '0000:41:00.0'})
        self._assert_refused(document, "inventory.iommu_groups['12']",
                             'expected a list')


class PciFunctionTest(base.BaseTestCase):

    def test_bridges(self):
        for class_code in ('060000', '060400', '060401', '060900'):
            self.assertTrue(model.PciFunction('a', class_code=class_code)
                            .is_bridge, class_code)
        for class_code in ('060100', '030000', '020000', None):
            self.assertFalse(model.PciFunction('a', class_code=class_code)
                             .is_bridge, class_code)

    def test_gpu_classes(self):
        self.assertTrue(model.PciFunction('a', class_code='030000')
                        .is_gpu_class)
        self.assertTrue(model.PciFunction('a', class_code='030200')
                        .is_gpu_class)
        self.assertFalse(model.PciFunction('a', class_code='040300')
                         .is_gpu_class)

    def test_slot(self):
        self.assertEqual('0000:41:00',
                         model.PciFunction('0000:41:00.3').slot)
