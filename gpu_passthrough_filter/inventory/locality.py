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
"""Where a GPU sits: PCIe switch, root port, root complex, NUMA node.

The PCIe path of a function is the chain of directories of its sysfs
realpath: ``pci0000:17`` (the host bridge, i.e. the root complex), then the
root port ``0000:17:00.0``, then for a GPU behind a switch the switch's
upstream port ``0000:18:00.0`` and one of its downstream ports
``0000:19:08.0``. Below a root port, bridges alternate upstream port,
downstream port, upstream port (a cascaded switch), ...; the switch of a
GPU is the one whose downstream port it hangs from, named by its upstream
port's address (:data:`gpu_passthrough_filter.tags.SWITCH`).

Pure module: no nova, oslo or openstacksdk import.
"""


def parse_cpulist(text):
    """``"0-7,16-23"`` -> sorted CPU numbers.

    :param text: a sysfs cpulist; empty means no CPU.
    :raises ValueError: the text is not a cpulist.
    """
    cpus = set()
    for part in text.strip().split(','):
        if not part:
            continue
        first, sep, last = part.partition('-')
        start = int(first)
        end = int(last) if sep else start
        if start < 0 or end < start:
            raise ValueError('bad cpulist range %r' % part)
        cpus.update(range(start, end + 1))
    return sorted(cpus)


def parse_cpumask(text):
    """CPUs of a sysfs hex mask (``local_cpus``: ``ff,00000000``).

    Comma-separated 32-bit words, most significant first; bit *i* is CPU
    *i*.

    :raises ValueError: for anything else.
    """
    words = text.strip().split(',')
    if not words or any(not w or len(w) > 8 for w in words):
        raise ValueError('not a CPU mask')
    value = int(''.join(w.zfill(8) for w in words), 16)
    return [cpu for cpu in range(value.bit_length()) if value >> cpu & 1]


def derive_numa_node(numa_node, local_cpus, numa_nodes):
    """The NUMA node of a device, from ``local_cpulist`` if need be.

    Firmware often leaves ``numa_node`` at ``-1`` (read as None) while
    ``local_cpulist`` still names the socket's CPUs; when those CPUs all
    belong to exactly one node, that node is the answer. A device local to
    every CPU tells nothing, so it stays unknown.

    :param numa_node: the node sysfs gave, None for ``-1``.
    :param local_cpus: CPUs from ``local_cpulist``, or None.
    :param numa_nodes: the host's :class:`~.model.NumaNode` list.
    :returns: a node id or None.
    """
    if numa_node is not None:
        return numa_node
    if not local_cpus:
        return None
    local = set(local_cpus)
    touched = [node.id for node in numa_nodes if local & set(node.cpus)]
    return touched[0] if len(touched) == 1 else None


def is_host_bridge_dir(name):
    """True for ``pci<domain>:<bus>`` sysfs directories (root complexes)."""
    return name.startswith('pci')


def root_complex(parents):
    """Host bridge directory of a PCIe path, or None.

    The last one is taken: behind an Intel VMD the path holds a second
    domain's host bridge, and that one is the device's real root.

    :param parents: the path, as :attr:`PciFunction.parents`.
    """
    for name in reversed(parents):
        if is_host_bridge_dir(name):
            return name
    return None


def _below_root(parents):
    """The PCI functions of the path after its (last) host bridge."""
    for index in range(len(parents) - 1, -1, -1):
        if is_host_bridge_dir(parents[index]):
            return parents[index + 1:]
    return list(parents)


def root_port(parents):
    """Address of the root port above a device, or None (root bus).

    :param parents: the path, as :attr:`PciFunction.parents`.
    """
    below = _below_root(parents)
    return below[0] if below else None


def switch_upstream_port(parents, ports_above_bridges=frozenset()):
    """Upstream port of the PCIe switch right above a device, or None.

    Below the root port the bridges alternate upstream port, downstream
    port, upstream port, ...; the nearest upstream port at an even
    position is the switch the device sits in. A device right below one
    bridge is on a switch's internal bus only when that bridge has bridges
    below it (its downstream ports); otherwise the bridge is a plain
    PCI-to-PCI (or PCIe-to-PCI) bridge, which gives its devices no shared
    peer-to-peer fabric, and there is no switch.

    :param parents: the path, as :attr:`PciFunction.parents`.
    :param ports_above_bridges: addresses of the bridges that have other
        bridges below them (:func:`ports_above_bridges`).
    """
    switch_ports = _below_root(parents)[1:]
    if not switch_ports:
        return None
    if len(switch_ports) == 1 and switch_ports[0] not in ports_above_bridges:
        return None
    return switch_ports[(len(switch_ports) - 1) // 2 * 2]


def ports_above_bridges(functions):
    """Addresses of the bridges with another bridge below them.

    :param functions: every :class:`~.model.PciFunction` of the host.
    """
    above = set()
    for function in functions:
        if function.is_bridge:
            above.update(name for name in function.parents
                         if not is_host_bridge_dir(name))
    return frozenset(above)
