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
"""Which GPUs the agent offers, one case per rule (a table)."""

from oslotest import base

from gpu_passthrough_filter.agent import selection
from gpu_passthrough_filter.inventory import model
from gpu_passthrough_filter import tags

GPU_CLASS = '030200'
NIC_CLASS = '020000'
BRIDGE_CLASS = '060400'


def _host(*gpus, groups=None, extra=()):
    """An inventory of ``gpus`` (address, group, isolation) + functions."""
    functions = [model.PciFunction(address, '10de', '2330',
                                   class_code=GPU_CLASS, iommu_group=group)
                 for address, group, _ in gpus]
    functions += [model.PciFunction(address, '15b3', '1017', class_code=code,
                                    iommu_group=group)
                  for address, group, code in extra]
    members = {}
    for function in functions:
        members.setdefault(function.iommu_group, []).append(function.address)
    return model.HostInventory(
        'h', iommu_enabled=True, functions=functions,
        iommu_groups=groups or members,
        gpus=[model.GPU(address, [address], vendor='10de', device='2330',
                        iommu_group=group, isolation=isolation,
                        isolation_reason='IOMMU off' if isolation ==
                        tags.UNKNOWN else '')
              for address, group, isolation in gpus])


A = '0000:18:00.0'
B = '0000:19:00.0'
NIC = '0000:1a:00.0'
BRIDGE = '0000:17:00.0'

#: (case, inventory, include_shared_groups, {address: (offered, reason
#: fragment)})
CASES = [
    ('isolated', _host((A, '1', tags.ISOLATED)), False,
     {A: (True, 'IOMMU group 1 is isolated')}),
    ('unknown is never offered', _host((A, None, tags.UNKNOWN)), True,
     {A: (False, 'isolation unknown: IOMMU off')}),
    ('GPUs only, not asked', _host((A, '2', tags.SHARED),
                                   (B, '2', tags.SHARED)), False,
     {A: (False, 'set [nova_pci] include_shared_groups'),
      B: (False, 'shared with GPU(s) 0000:18:00.0')}),
    ('GPUs only, asked', _host((A, '2', tags.SHARED),
                               (B, '2', tags.SHARED)), True,
     {A: (True, 'offered whole'), B: (True, 'offered whole')}),
    ('a NIC in the group', _host((A, '3', tags.SHARED),
                                 extra=[(NIC, '3', NIC_CLASS)]), True,
     {A: (False, 'shared with 0000:1a:00.0, which is not a GPU')}),
    ('a bridge in the group does not count',
     _host((A, '4', tags.SHARED), (B, '4', tags.SHARED),
           extra=[(BRIDGE, '4', BRIDGE_CLASS)]), True,
     {A: (True, 'offered whole')}),
    ('a member the agent could not read is foreign',
     _host((A, '5', tags.SHARED), groups={'5': [A, NIC]}), True,
     {A: (False, 'shared with 0000:1a:00.0')}),
]


class ChooseTest(base.BaseTestCase):

    def test_table(self):
        for case, inventory, shared, expected in CASES:
            choices = {c.gpu.address: c
                       for c in selection.choose(inventory, shared)}
            for address, (offered, reason) in expected.items():
                self.assertEqual(offered, choices[address].offered, case)
                self.assertIn(reason, choices[address].reason, case)

    def test_unreadable_ids_are_not_offered(self):
        inventory = _host((A, '1', tags.ISOLATED))
        inventory.gpus[0].device = None
        choice, = selection.choose(inventory)
        self.assertEqual((False, 'vendor or device id unreadable'),
                         (choice.offered, choice.reason))

    def test_group_size_and_order(self):
        inventory = _host((B, '2', tags.SHARED), (A, '2', tags.SHARED))
        choices = selection.choose(inventory, True)
        self.assertEqual([A, B], [c.gpu.address for c in choices])
        self.assertEqual([2, 2], [c.group_gpus for c in choices])
        self.assertEqual([A, B], [g.address for g in
                                  selection.offered(choices)])

    def test_offers_is_the_rule_on_the_verdict(self):
        self.assertEqual(
            [True, False, False, True, True, False],
            [selection.offers(verdict, shared) for shared in (False, True)
             for verdict in tags.ISOLATION_VERDICTS])
