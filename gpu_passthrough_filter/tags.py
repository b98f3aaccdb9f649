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
"""The names the agent publishes and the scheduler reads: one contract.

The agent writes these as tags of ``[pci] device_spec`` entries in a nova
config file; nova-compute's PCI tracker copies device_spec tags into the
scheduler's ``HostState.pci_stats`` pools as string keys (verified on Nova
34: one pool per device address). Both sides import this module so that a
rename cannot split them. These names are a published interface: never
rename one, add a new one instead.

Pure module: no nova, oslo or openstacksdk import.
"""

#: Prefix of every tag this project owns; a pool carrying none of them was
#: not written by the agent ("untagged host").
TAG_PREFIX = 'gpupt_'

#: IOMMU group number of the GPU on its host, e.g. ``"42"``. GPUs that share
#: a group must be given to a guest together.
IOMMU_GROUP = 'gpupt_iommu_group'

#: The agent's isolation verdict for the GPU's IOMMU group, one of
#: :data:`ISOLATION_VERDICTS`.
ISOLATION = 'gpupt_isolation'

#: Identifier of the PCIe switch the GPU sits under (the address of the
#: switch's upstream port), or ``"none"`` when the GPU hangs directly off a
#: root port.
SWITCH = 'gpupt_switch'

#: Identifier of the PCIe root port / root complex the GPU sits under.
ROOT = 'gpupt_root'

#: Host NUMA node of the GPU as sysfs reports it (or as the agent derived it
#: from ``local_cpulist`` when ``numa_node`` is ``-1``). ``"-1"``: unknown.
NUMA_NODE = 'gpupt_numa_node'

#: GPU model, ``<vendor_id>:<product_id>`` in lower-case hex, e.g.
#: ``"10de:2330"``.
MODEL = 'gpupt_model'

#: Number of GPUs in the same IOMMU group (``"1"`` for an isolated GPU).
GROUP_GPUS = 'gpupt_group_gpus'

ALL_TAGS = (IOMMU_GROUP, ISOLATION, SWITCH, ROOT, NUMA_NODE, MODEL,
            GROUP_GPUS)

# IOMMU isolation verdicts.
#: The group holds only this GPU's own functions plus bridges: safe to pass
#: through alone.
ISOLATED = 'isolated'
#: The group holds another endpoint (a second GPU, a NIC, ...): the whole
#: group must go to one guest, or none of it.
SHARED = 'shared'
#: Isolation could not be proven (IOMMU off, missing or unreadable data).
UNKNOWN = 'unknown'
ISOLATION_VERDICTS = (ISOLATED, SHARED, UNKNOWN)

#: Value of :data:`SWITCH` for a GPU directly under a root port.
NO_SWITCH = 'none'
