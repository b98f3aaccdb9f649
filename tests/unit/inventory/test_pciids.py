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
"""pci.ids parsing; each test writes its own small database."""

import os

import fixtures
from oslotest import base

from gpu_passthrough_filter.inventory import pciids

SAMPLE = ''.join(line + '\n' for line in (
    "#\tList of PCI ID's (test excerpt)",
    '#',
    '10de  NVIDIA Corporation',
    '\t2330  GH100 [H100 SXM5 80GB]',
    '\t\t10de 16c1  H100 SXM5 80GB',
    '\t1e07  TU102 [GeForce RTX 2080 Ti Rev. A]',
    '1bcf  NEC Corporation',
    '\t001c  Vector Engine 1.0',
    '8086  Intel Corporation',
    '\t2030  Sky Lake-E PCI Express Root Port A',
    'C 03  Display controller',
    '\t00  VGA compatible controller',
))


class PciIdsTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'pci.ids')
        with open(self.path, 'w') as stream:
            stream.write(SAMPLE)

    def test_names(self):
        names = pciids.load_pci_ids(self.path)
        self.assertEqual('NVIDIA Corporation GH100 [H100 SXM5 80GB]',
                         names.describe('10de', '2330'))
        self.assertEqual('NEC Corporation', names.vendor_name('1bcf'))

    def test_subsystems_and_classes_are_not_devices(self):
        names = pciids.load_pci_ids(self.path)
        self.assertIsNone(names.device_name('10de', '10de'))
        self.assertNotIn('c 03', names.vendors)
        self.assertEqual({'10de', '1bcf', '8086'}, set(names.vendors))

    def test_vendor_filter_keeps_only_wanted_devices(self):
        names = pciids.load_pci_ids(self.path, vendors={'1bcf'})
        self.assertEqual('Vector Engine 1.0',
                         names.device_name('1bcf', '001c'))
        self.assertIsNone(names.device_name('10de', '2330'))

    def test_unknown_device_falls_back_to_ids(self):
        names = pciids.load_pci_ids(self.path)
        self.assertEqual('10de:ffff', names.describe('10de', 'ffff'))

    def test_missing_database_gives_ids(self):
        names = pciids.load_pci_ids(self.path + '.absent')
        self.assertEqual('10de:2330', names.describe('10de', '2330'))

    def test_find_takes_the_first_existing(self):
        self.assertEqual(self.path, pciids.find_pci_ids(
            [self.path + '.absent', self.path]))
        self.assertIsNone(pciids.find_pci_ids([self.path + '.absent']))

    def test_vendor_on_the_first_line(self):
        with open(self.path, 'w') as stream:
            stream.write('1bcf  NEC Corporation\n\t001c  Vector Engine 1.0\n')
        names = pciids.load_pci_ids(self.path, vendors=['1bcf', None])
        self.assertEqual('NEC Corporation Vector Engine 1.0',
                         names.describe('1bcf', '001c'))

    def test_vendor_filter_equals_full_parse(self):
        wanted = {'10de', '8086'}
        full = pciids.load_pci_ids(self.path)
        part = pciids.load_pci_ids(self.path, vendors=wanted)
        self.assertEqual({key: name for key, name in full.devices.items()
                          if key[0] in wanted}, part.devices)
        self.assertEqual({'10de': 'NVIDIA Corporation',
                          '8086': 'Intel Corporation'}, part.vendors)
