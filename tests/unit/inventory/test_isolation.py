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
"""IOMMU verdicts on hand-built groups: never isolated without proof."""

from oslotest import base

from gpu_passthrough_filter.inventory import isolation
from gpu_passthrough_filter.inventory import model
from gpu_passthrough_filter import tags

GPU = '0000:01:00.0'
AUDIO = '0000:01:00.1'
ROOT_PORT = '0000:00:01.0'
HOST_BRIDGE = '0000:00:00.0'
NIC = '0000:02:00.0'
GPU2 = '0000:03:00.0'


def functions(**drivers):
    """The usual suspects, with drivers overridable by variable name."""
    table = {
        GPU: ('030000', 'nvidia'), AUDIO: ('040300', 'snd_hda_intel'),
        ROOT_PORT: ('060400', 'pcieport'), HOST_BRIDGE: ('060000', None),
        NIC: ('020000', 'ixgbe'), GPU2: ('030200', 'nvidia'),
    }
    names = {'gpu': GPU, 'audio': AUDIO, 'nic': NIC, 'gpu2': GPU2}
    for name, driver in drivers.items():
        address = names[name]
        table[address] = (table[address][0], driver)
    return {address: model.PciFunction(address, class_code=class_code,
                                       driver=driver)
            for address, (class_code, driver) in table.items()}


def classify(members, own=(GPU, AUDIO), group='5', iommu=True,
             table=None, unreadable_drivers=()):
    return isolation.classify(list(own), group, sorted(members),
                              table if table is not None else functions(),
                              iommu, unreadable_drivers)


class VerdictTest(base.BaseTestCase):

    def test_alone(self):
        self.assertEqual(tags.ISOLATED, classify([GPU]).isolation)

    def test_own_audio_and_bridges_are_allowed(self):
        verdict = classify([GPU, AUDIO, ROOT_PORT, HOST_BRIDGE])
        self.assertEqual(tags.ISOLATED, verdict.isolation)

    def test_another_endpoint_shares(self):
        verdict = classify([GPU, AUDIO, ROOT_PORT, NIC])
        self.assertEqual(tags.SHARED, verdict.isolation)
        self.assertIn(NIC, verdict.reason)

    def test_second_gpu_shares(self):
        self.assertEqual(tags.SHARED, classify([GPU, GPU2]).isolation)

    def test_iommu_off_is_unknown(self):
        verdict = classify([GPU], iommu=False)
        self.assertEqual(tags.UNKNOWN, verdict.isolation)
        self.assertIn('IOMMU off', verdict.reason)

    def test_no_group_is_unknown(self):
        self.assertEqual(tags.UNKNOWN,
                         classify([GPU], group=None).isolation)

    def test_group_not_listing_the_gpu_is_unknown(self):
        self.assertEqual(tags.UNKNOWN, classify([AUDIO]).isolation)

    def test_unreadable_member_is_unknown(self):
        verdict = classify([GPU, '0000:09:00.0'])
        self.assertEqual(tags.UNKNOWN, verdict.isolation)
        self.assertIn('0000:09:00.0', verdict.reason)

    def test_member_with_unknown_class_is_unknown(self):
        table = functions()
        table[NIC].class_code = None
        self.assertEqual(tags.UNKNOWN,
                         classify([GPU, NIC], table=table).isolation)

    def test_shared_wins_over_unreadable(self):
        # A proven sharing partner is a fact; the unreadable one adds
        # nothing that could make the GPU isolated.
        verdict = classify([GPU, NIC, '0000:09:00.0'])
        self.assertEqual(tags.SHARED, verdict.isolation)


class VfioReadyTest(base.BaseTestCase):

    def test_all_vfio(self):
        table = functions(gpu='vfio-pci', audio='vfio-pci')
        self.assertTrue(classify([GPU, AUDIO, ROOT_PORT],
                                 table=table).vfio_ready)

    def test_unbound_counts_as_ready(self):
        table = functions(gpu='vfio-pci', audio=None)
        self.assertTrue(classify([GPU, AUDIO], table=table).vfio_ready)

    def test_host_driver_on_own_function(self):
        table = functions(gpu='vfio-pci')  # audio on snd_hda_intel
        self.assertFalse(classify([GPU, AUDIO], table=table).vfio_ready)

    def test_variant_driver(self):
        table = functions(gpu='nvgrace-gpu-vfio-pci', audio=None)
        self.assertTrue(classify([GPU, AUDIO], table=table).vfio_ready)

    def test_bridge_driver_does_not_matter(self):
        table = functions(gpu='vfio-pci', audio='vfio-pci')
        self.assertTrue(classify([GPU, ROOT_PORT, HOST_BRIDGE],
                                 table=table).vfio_ready)

    def test_shared_group_all_vfio_is_ready(self):
        table = functions(gpu='vfio-pci', gpu2='vfio-pci')
        verdict = classify([GPU, GPU2], table=table)
        self.assertEqual(tags.SHARED, verdict.isolation)
        self.assertTrue(verdict.vfio_ready)

    def test_unreadable_driver_is_not_ready(self):
        table = functions(gpu=None)
        self.assertFalse(classify([GPU], table=table,
                                  unreadable_drivers={GPU}).vfio_ready)

    def test_unknown_group_is_not_ready(self):
        table = functions(gpu='vfio-pci')
        self.assertFalse(classify([GPU], table=table,
                                  iommu=False).vfio_ready)
