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
"""Fleets of simulated compute hosts: plain data and three loaders.

* :func:`load_openb`: the openb production cluster (Alibaba GPU trace
  v2023), with a PCIe/NUMA/IOMMU layout derived from each node's shape by
  :data:`DEFAULT_LAYOUTS`;
* :func:`load_yaml`: a fleet file written by hand;
* :func:`load_inventories`: a directory of the agent's JSON inventories.

Pure module: no nova, oslo or openstacksdk import (nova objects are built
from these values in :mod:`gpu_passthrough_filter.sim.nova_env`).
"""

import collections
import csv
import dataclasses
import os
import pathlib
import random
import typing

import yaml

from gpu_passthrough_filter import tags

DATA_DIR = pathlib.Path(__file__).resolve().parent / 'data'
OPENB_GPU_NODES = DATA_DIR / 'openb_node_list_gpu_node.csv'
OPENB_ALL_NODES = DATA_DIR / 'openb_node_list_all_node.csv'


class FleetError(ValueError):
    """A fleet file is malformed; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class GPUModel:
    """A GPU model as nova's PCI code sees it.

    :param name: the model's short name (the openb ``model`` column), also
        the ``[pci] alias`` name for it, lower-cased.
    :param vendor_id: PCI vendor id, 4 lower-case hex digits.
    :param product_id: PCI device id, 4 lower-case hex digits.
    """
    name: str
    vendor_id: str
    product_id: str

    @property
    def alias(self):
        return self.name.lower()

    @property
    def model_tag(self):
        return '%s:%s' % (self.vendor_id, self.product_id)


#: PCI ids of the openb models. G1, G2 and G3 are undisclosed in the trace:
#: their ids are placeholders in NVIDIA's vendor space, only distinct.
OPENB_MODELS = {model.name: model for model in (
    GPUModel('P100', '10de', '15f8'),
    GPUModel('T4', '10de', '1eb8'),
    GPUModel('V100M16', '10de', '1db4'),
    GPUModel('V100M32', '10de', '1db6'),
    GPUModel('A10', '10de', '2236'),
    GPUModel('G1', '10de', 'ff01'),
    GPUModel('G2', '10de', 'ff02'),
    GPUModel('G3', '10de', 'ff03'),
)}


@dataclasses.dataclass(frozen=True)
class SimGPU:
    """One passthrough GPU of a simulated host.

    :param address: PCI address, ``0000:BB:00.0`` in lower-case hex.
    :param model: the :class:`GPUModel`.
    :param numa_node: host NUMA node.
    :param switch: PCIe switch identifier or :data:`tags.NO_SWITCH`.
    :param root: root complex identifier.
    :param iommu_group: IOMMU group number (as a string).
    :param isolation: one of :data:`tags.ISOLATION_VERDICTS`.
    :param group_gpus: number of GPUs in the IOMMU group.
    """
    address: str
    model: GPUModel
    numa_node: int
    switch: str
    root: str
    iommu_group: str
    isolation: str = tags.ISOLATED
    group_gpus: int = 1

    def device_spec_tags(self):
        """The tags the agent writes into this GPU's ``device_spec``."""
        return tags.encode(tags.GPUTags(
            iommu_group=self.iommu_group, isolation=self.isolation,
            switch=None if self.switch == tags.NO_SWITCH else self.switch,
            root=self.root, numa_node=self.numa_node,
            model=self.model.model_tag, group_gpus=self.group_gpus))


@dataclasses.dataclass(frozen=True)
class SimHost:
    """One simulated compute host.

    :param name: host name (unique in the fleet).
    :param vcpus: vCPUs of the host (before the allocation ratio).
    :param memory_mb: RAM in MiB.
    :param numa_nodes: number of host NUMA nodes; CPUs and RAM are split
        evenly over them.
    :param gpus: the passthrough GPUs.
    :param disk_gb: local disk in GiB.
    """
    name: str
    vcpus: int
    memory_mb: int
    numa_nodes: int = 2
    gpus: typing.Tuple[SimGPU, ...] = ()
    disk_gb: int = 10000

    @property
    def gpu_count(self):
        return len(self.gpus)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How the GPUs of one node shape sit: NUMA nodes x switches x GPUs.

    :param numa_nodes: NUMA nodes the GPUs are spread over.
    :param switches_per_numa: PCIe switches per NUMA node; 0 puts every GPU
        directly under a root port.
    :param gpus_per_switch: GPUs under each switch (or per NUMA node when
        there is no switch).
    """
    numa_nodes: int
    switches_per_numa: int
    gpus_per_switch: int

    @property
    def gpus(self):
        return (self.numa_nodes * max(1, self.switches_per_numa)
                * self.gpus_per_switch)


#: Layout per GPU count: 8-GPU nodes 2 NUMA x 2 switches x 2 GPUs (HGX-like
#: with PLX switches), 4-GPU nodes 2 NUMA x 1 switch x 2 GPUs, 2-GPU nodes
#: one GPU per socket, 1-GPU nodes on NUMA node 0. Other counts: spread
#: round-robin over two NUMA nodes, no switch.
DEFAULT_LAYOUTS = {
    8: Layout(2, 2, 2),
    4: Layout(2, 1, 2),
    2: Layout(2, 0, 1),
    1: Layout(1, 0, 1),
}


def parse_layouts(text):
    """Parse ``"8=2x2x2,4=2x1x2"`` into a layout table over the defaults.

    :param text: comma-separated ``GPUS=NUMAxSWITCHESxGPUS`` items.
    :returns: a dict like :data:`DEFAULT_LAYOUTS`.
    :raises FleetError: on a malformed item or a product that does not
        equal the GPU count.
    """
    layouts = dict(DEFAULT_LAYOUTS)
    for item in filter(None, (part.strip() for part in text.split(','))):
        try:
            count, shape = item.split('=')
            numa, switches, per = (int(x) for x in shape.split('x'))
            layout = Layout(numa, switches, per)
        except ValueError:
            raise FleetError('layout %r is not GPUS=NUMAxSWITCHESxGPUS, '
                             'e.g. 8=2x2x2' % item)
        if layout.gpus != int(count):
            raise FleetError('layout %r places %d GPUs, not %s'
                             % (item, layout.gpus, count))
        layouts[int(count)] = layout
    return layouts


def _slots(count, layouts):
    """(numa_node, switch_index or None) for each of ``count`` GPUs."""
    layout = layouts.get(count)
    if layout is None:
        return [(index % 2, None) for index in range(count)]
    slots = []
    for numa in range(layout.numa_nodes):
        for switch in range(max(1, layout.switches_per_numa)):
            switch_id = switch if layout.switches_per_numa else None
            slots.extend([(numa, switch_id)] * layout.gpus_per_switch)
    return slots


def build_gpus(count, model, layouts=None, shared_groups=False):
    """The GPUs of one host laid out by ``layouts``.

    NUMA node *n* owns buses from ``0x18 + 0x80*n``; each switch gets its
    own upstream port address, which is its identifier. With
    ``shared_groups``, consecutive GPUs under one switch (or one NUMA node)
    are paired in one IOMMU group, as behind a PCIe switch without ACS.

    :param count: number of GPUs.
    :param model: the :class:`GPUModel` of all of them.
    :param layouts: layout table (default :data:`DEFAULT_LAYOUTS`).
    :param shared_groups: pair GPUs in shared two-GPU IOMMU groups.
    :returns: a tuple of :class:`SimGPU`.
    """
    slots = _slots(count, layouts or DEFAULT_LAYOUTS)
    step = _bus_step(slots)
    gpus, used_per_numa = [], {}
    for index, (numa, switch) in enumerate(slots):
        position = used_per_numa.get(numa, 0)
        used_per_numa[numa] = position + 1
        bus = 0x18 + 0x80 * numa + step * position
        switch_id = (tags.NO_SWITCH if switch is None else
                     '0000:%02x:00.0' % (0x17 + 0x80 * numa + 0x20 * switch))
        gpus.append(SimGPU(
            address='0000:%02x:00.0' % bus, model=model, numa_node=numa,
            switch=switch_id, root='pci0000:%02x' % (0x80 * numa),
            iommu_group=str(bus)))
    return tuple(_pair_groups(gpus) if shared_groups else gpus)


def _bus_step(slots):
    """Bus numbers between two GPUs of one NUMA node.

    0x10, or less so that 16 or 64 GPUs still fit in the 256 buses of one
    PCI domain.
    """
    nodes = max((numa for numa, _ in slots), default=0)
    per_node = max(collections.Counter(n for n, _ in slots).values(),
                   default=1)
    room = 0xff - (0x18 + 0x80 * nodes)
    return max(1, min(0x10, room // max(1, per_node - 1)))


def _pair_groups(gpus):
    """Put consecutive GPUs of one switch/NUMA node into shared groups."""
    paired, index = [], 0
    while index < len(gpus):
        first = gpus[index]
        second = gpus[index + 1] if index + 1 < len(gpus) else None
        if (second is not None and second.numa_node == first.numa_node
                and second.switch == first.switch):
            for gpu in (first, second):
                paired.append(dataclasses.replace(
                    gpu, iommu_group=first.iommu_group,
                    isolation=tags.SHARED, group_gpus=2))
            index += 2
        else:
            paired.append(first)
            index += 1
    return paired


@dataclasses.dataclass
class Fleet:
    """A list of hosts and where it came from.

    :param hosts: the :class:`SimHost` list, in placement order.
    :param source: a short description for reports.
    """
    hosts: typing.List[SimHost]
    source: str = ''

    @property
    def gpu_count(self):
        return sum(host.gpu_count for host in self.hosts)

    def models(self):
        """Every GPU model present, by name."""
        return {gpu.model.name: gpu.model
                for host in self.hosts for gpu in host.gpus}


def _read_openb_rows(path):
    with open(path, newline='') as stream:
        reader = csv.DictReader(stream)
        for line, row in enumerate(reader, start=2):
            yield line, row


def _openb_host(path, line, row, layouts, shared):
    try:
        gpus = int(row['gpu'])
        vcpus = int(row['cpu_milli']) // 1000
        memory_mb = int(row['memory_mib'])
    except (KeyError, TypeError, ValueError) as error:
        raise FleetError('%s line %d: bad node row %r (%s)'
                         % (path, line, row, error))
    model_name = (row.get('model') or '').strip()
    if gpus and model_name not in OPENB_MODELS:
        raise FleetError('%s line %d: node %s has unknown GPU model %r'
                         % (path, line, row.get('sn'), model_name))
    gpu_list = (build_gpus(gpus, OPENB_MODELS[model_name], layouts, shared)
                if gpus else ())
    return SimHost(name=row['sn'], vcpus=vcpus, memory_mb=memory_mb,
                   numa_nodes=2, gpus=gpu_list)


def load_openb(path=None, hosts=None, seed=0, shared_group_fraction=0.0,
               cpu_nodes=False, layouts=None):
    """The openb cluster, or a seeded sample of it.

    :param path: node CSV; default the bundled GPU-node or all-node list.
    :param hosts: number of hosts to sample (None: all).
    :param seed: seed of the sampling and of the shared-group choice.
    :param shared_group_fraction: fraction of GPU hosts (0.0 to 1.0) whose
        GPUs are paired in shared two-GPU IOMMU groups.
    :param cpu_nodes: include the CPU-only nodes (all-node list).
    :param layouts: layout table (default :data:`DEFAULT_LAYOUTS`).
    :returns: a :class:`Fleet`.
    """
    if path is None:
        path = OPENB_ALL_NODES if cpu_nodes else OPENB_GPU_NODES
    rng = random.Random(seed)
    rows = [(line, row) for line, row in _read_openb_rows(path)
            if cpu_nodes or int(row.get('gpu') or 0) > 0]
    if hosts is not None and hosts < len(rows):
        rows = sorted(rng.sample(rows, hosts), key=lambda item: item[0])
    result = []
    for line, row in rows:
        shared = rng.random() < shared_group_fraction
        result.append(_openb_host(path, line, row, layouts, shared))
    return Fleet(result, source='openb %s (%d hosts)'
                 % (os.path.basename(str(path)), len(result)))


# -- YAML fleet files ---------------------------------------------------

YAML_SCHEMA_HELP = """\
hosts:
  - name: gpu-01          # required, unique
    vcpus: 96             # required
    memory_mb: 786432     # required
    numa_nodes: 2         # optional, default 2
    count: 4              # optional: this many hosts, named name-1..name-N
    gpus:                 # optional
      model: {name: H100, vendor_id: 10de, product_id: '2330'}
                          # or an openb model name: V100M32
      count: 8
      layout: 2x2x2       # optional, NUMAxSWITCHESxGPUS
      shared_groups: false
"""


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records the line of each mapping."""


def _construct_mapping(loader, node):
    mapping = loader.construct_mapping(node, deep=True)
    mapping['__line__'] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_model(where, value):
    if isinstance(value, str):
        if value not in OPENB_MODELS:
            raise FleetError('%s: unknown GPU model %r (known: %s; or give '
                             '{name, vendor_id, product_id})'
                             % (where, value, ', '.join(OPENB_MODELS)))
        return OPENB_MODELS[value]
    if not isinstance(value, dict):
        raise FleetError('%s: gpus.model must be a name or a mapping' % where)
    try:
        return GPUModel(str(value['name']), str(value['vendor_id']).lower(),
                        str(value['product_id']).lower())
    except KeyError as error:
        raise FleetError('%s: gpus.model lacks %s' % (where, error))


def _yaml_gpus(where, value):
    if not value:
        return ()
    if not isinstance(value, dict) or 'model' not in value:
        raise FleetError('%s: gpus must be a mapping with model and count'
                         % where)
    model = _yaml_model(where, value['model'])
    count = _yaml_int(where, value, 'count')
    layouts = dict(DEFAULT_LAYOUTS)
    if value.get('layout'):
        layouts = parse_layouts('%d=%s' % (count, value['layout']))
    return build_gpus(count, model, layouts,
                      bool(value.get('shared_groups', False)))


def _yaml_int(where, entry, key, default=None):
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FleetError('%s: %s must be a non-negative integer, not %r'
                         % (where, key, value))
    return value


def _yaml_hosts(path, entry, names):
    if not isinstance(entry, dict):
        raise FleetError('%s: each host must be a mapping, not %r'
                         % (path, entry))
    where = '%s line %s' % (path, entry.get('__line__', '?'))
    name = entry.get('name')
    if not name or not isinstance(name, str):
        raise FleetError('%s: host without a name' % where)
    where += ' (host %s)' % name
    unknown = set(entry) - {'name', 'vcpus', 'memory_mb', 'numa_nodes',
                            'count', 'gpus', 'disk_gb', '__line__'}
    if unknown:
        raise FleetError('%s: unknown key(s) %s'
                         % (where, ', '.join(sorted(unknown))))
    vcpus = _yaml_int(where, entry, 'vcpus')
    memory_mb = _yaml_int(where, entry, 'memory_mb')
    numa_nodes = _yaml_int(where, entry, 'numa_nodes', 2) or 1
    disk_gb = _yaml_int(where, entry, 'disk_gb', 10000)
    gpus = _yaml_gpus(where, entry.get('gpus'))
    count = _yaml_int(where, entry, 'count', 1)
    host_names = ([name] if 'count' not in entry else
                  ['%s-%d' % (name, index + 1) for index in range(count)])
    hosts = []
    for host_name in host_names:
        if host_name in names:
            raise FleetError('%s: duplicate host name %s' % (where, host_name))
        names.add(host_name)
        hosts.append(SimHost(host_name, vcpus, memory_mb, numa_nodes, gpus,
                             disk_gb))
    return hosts


def load_yaml(path):
    """A fleet file written by hand (schema: :data:`YAML_SCHEMA_HELP`).

    :param path: path of the YAML file.
    :returns: a :class:`Fleet`.
    :raises FleetError: naming the file, the line and the host.
    """
    try:
        with open(path) as stream:
            document = yaml.load(stream, Loader=_LineLoader)  # nosec B506
    except yaml.YAMLError as error:
        raise FleetError('%s: not valid YAML: %s' % (path, error))
    if not isinstance(document, dict) or not isinstance(
            document.get('hosts'), list):
        raise FleetError('%s: expected a mapping with a "hosts" list:\n%s'
                         % (path, YAML_SCHEMA_HELP))
    hosts, names = [], set()
    for entry in document['hosts']:
        hosts.extend(_yaml_hosts(path, entry, names))
    return Fleet(hosts, source='%s (%d hosts)' % (path, len(hosts)))


# -- the agent's JSON inventories ----------------------------------------

def _inventory_gpu(inventory, gpu):
    """A :class:`SimGPU` from one GPU of an agent inventory."""
    vendor, product = (gpu.vendor or '0000'), (gpu.device or '0000')
    group = inventory.iommu_groups.get(str(gpu.iommu_group), [])
    gpu_addresses = {other.address for other in inventory.gpus}
    return SimGPU(
        address=gpu.address,
        model=GPUModel('%s_%s' % (vendor, product), vendor, product),
        numa_node=gpu.numa_node if (gpu.numa_node or 0) >= 0 else 0,
        switch=gpu.switch or tags.NO_SWITCH,
        root=gpu.root_complex or gpu.root_port or 'unknown',
        iommu_group=str(gpu.iommu_group),
        isolation=gpu.isolation,
        group_gpus=max(1, len(gpu_addresses.intersection(group))))


def _inventory_host(path, inventory):
    gpus = tuple(_inventory_gpu(inventory, gpu) for gpu in inventory.gpus)
    cpus = sum(len(node.cpus) for node in inventory.numa_nodes)
    memory_mb = sum((node.memory_kb or 0) // 1024
                    for node in inventory.numa_nodes)
    return SimHost(name=inventory.hostname, vcpus=cpus or 1,
                   memory_mb=memory_mb or 1024,
                   numa_nodes=max(1, len(inventory.numa_nodes)), gpus=gpus)


def load_inventories(directory):
    """A fleet from a directory of the agent's JSON inventories.

    :param directory: folder of ``*.json`` files written by
        ``gpu-passthrough-agent discover --format json``.
    :returns: a :class:`Fleet`.
    :raises FleetError: naming the file that does not parse.
    """
    from gpu_passthrough_filter.inventory import model as inventory_model
    hosts = []
    for path in sorted(pathlib.Path(directory).glob('*.json')):
        try:
            inventory = inventory_model.HostInventory.from_json(
                path.read_text())
            hosts.append(_inventory_host(path, inventory))
        except (ValueError, AttributeError, TypeError) as error:
            raise FleetError('%s: not a usable agent inventory: %s'
                             % (path, error))
    if not hosts:
        raise FleetError('%s: no *.json inventory in this directory'
                         % directory)
    return Fleet(hosts, source='%s (%d inventories)' % (directory,
                                                        len(hosts)))
