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
"""Options of the publishers, one group each."""

from oslo_config import cfg

NOVA_PCI_GROUP = cfg.OptGroup(
    'nova_pci',
    title='nova [pci] config publisher',
    help='The nova config file the agent writes for nova-compute.')

NOVA_PCI_OPTS = [
    cfg.StrOpt(
        'output_file',
        default='/etc/nova/nova.conf.d/gpu-passthrough.conf',
        help="""
Path of the generated nova configuration file with ``[pci] device_spec`` and
``[pci] alias`` entries. Put it in a directory that nova-compute reads with
``--config-dir``; nova-compute must be restarted when it changes.
"""),
    cfg.BoolOpt(
        'include_shared_groups',
        default=False,
        help="""
List GPUs whose IOMMU group is shared with other GPUs (each with its group
tag, so the scheduler hands out the group whole). GPUs whose group holds
other kinds of endpoints, or whose isolation is unknown, are never listed.
Enable it on hosts whose GPUs come in pairs behind one group.
"""),
    cfg.BoolOpt(
        'report_in_placement',
        default=False,
        help="""
Add ``resource_class`` and ``traits`` to each device_spec entry and alias,
for clouds with nova's ``[pci] report_in_placement`` and
``[filter_scheduler] pci_in_placement`` enabled.
"""),
    cfg.ListOpt(
        'alias_names',
        default=[],
        help="""
Names of the ``[pci] alias`` entries, as ``vendor:device=name`` items (ids
in hex), e.g. ``10de:2330=h100,10de:20b5=a100-80g``. Flavors ask for GPUs
with ``pci_passthrough:alias=<name>:<count>``, so set the same names on
every compute node. Models not listed get ``gpu-<vendor>-<device>``, e.g.
``gpu-10de-2330``.

Related options:

* ``[nova_pci] report_in_placement``
"""),
]

JSON_GROUP = cfg.OptGroup(
    'json_publisher',
    title='JSON publisher',
    help='Where the json publisher writes the full inventory.')

JSON_OPTS = [
    cfg.StrOpt(
        'output_file',
        default='-',
        help="""
Path of the JSON inventory document; ``-`` writes it to standard output.
The file is replaced atomically.
"""),
]


def register_opts(conf):
    conf.register_group(NOVA_PCI_GROUP)
    conf.register_opts(NOVA_PCI_OPTS, group=NOVA_PCI_GROUP)
    conf.register_group(JSON_GROUP)
    conf.register_opts(JSON_OPTS, group=JSON_GROUP)


def list_opts():
    return {NOVA_PCI_GROUP: NOVA_PCI_OPTS, JSON_GROUP: JSON_OPTS}
