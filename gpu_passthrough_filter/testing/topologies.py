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
"""Named real machines, written with :mod:`.fake_sysfs`.

Each function returns a :class:`~.fake_sysfs.Host`; its docstring cites
the public dump it is transcribed from and states what the agent must
find. The same expectations are data, so tests can assert them exactly:

:data:`EXPECTED`
    ``{machine: {gpu address: verdict}}`` with the verdicts of
    :mod:`gpu_passthrough_filter.tags` (``isolated``: the group holds only
    the GPU's own functions, same ``bus:device``, plus bridges;
    ``shared``: another endpoint is in the group; ``unknown``: no IOMMU
    groups). Every GPU (class 0x0300 or 0x0302) of the machine is listed.
:data:`SWITCHES`
    ``{machine: {gpu address: upstream port of its PCIe switch or None}}``.
:data:`NUMA`
    ``{machine: {gpu address: NUMA node}}``: the node the agent should
    report: ``numa_node``, or where that reads -1 (desktops), the node
    whose CPUs are the GPU's ``local_cpulist`` (node 0 on a one-node
    host).
:data:`NAMED`
    ``{name: function}``, what ``python -m
    gpu_passthrough_filter.testing.topologies --topology NAME --output
    DIR`` writes (the devstack plugin's fake-GPU mode uses it).

Where a source does not give a detail (an address, a bus number, a group
number), the value chosen is marked *chosen* in the docstring.
"""

import argparse
import os
import sys

from gpu_passthrough_filter import tags
from gpu_passthrough_filter.testing import fake_sysfs as fs

ISOLATED, SHARED, UNKNOWN = tags.ISOLATED, tags.SHARED, tags.UNKNOWN

NAMED = {}
EXPECTED = {}
SWITCHES = {}
NUMA = {}


def _machine(verdicts, switches=None, numa=None):
    """Register a machine with its expected verdicts, switches and NUMA.

    :param verdicts: ``{gpu: verdict}``.
    :param switches: ``{gpu: upstream}``; missing GPUs: no switch.
    :param numa: ``{gpu: node}``; ``None``: 0 for every GPU.
    """
    def register(function):
        name = function.__name__
        NAMED[name] = function
        EXPECTED[name] = dict(verdicts)
        SWITCHES[name] = {gpu: (switches or {}).get(gpu)
                          for gpu in verdicts}
        NUMA[name] = {gpu: (numa or {}).get(gpu, 0) for gpu in verdicts}
        return function
    return register


def _addresses(pattern, buses):
    return [pattern % bus for bus in buses]


# Consumer boards: the GPU in its root port's group.

@_machine({'0000:01:00.0': ISOLATED})
def consumer_intel_turing():
    """GTX 1660 (10de:2184) with HDA, USB and UCSI functions, Skylake.

    Source: github.com/Coopydood/ultimate-macOS-KVM/issues/213: IOMMU
    group 2 = root port 00:01.0 (8086:1901) + 01:00.0-3 (10de:2184,
    1aeb, 1aec, 1aed); group 0 = iGPU 00:02.0 (8086:1912, class 0x0380).

    Expected: 01:00.0 *isolated* (only its own four functions and a
    bridge in the group), no switch; ``numa_node`` reads -1 (a desktop),
    so the agent's node is 0, the one node whose CPUs it lists.
    The iGPU (class 0x0380) is no GPU for the agent. Chosen: the host
    bridge 00:00.0 in group 1, the PCH USB controller in group 3.
    """
    return fs.Host(
        numa_nodes=[fs.NumaNode(0, '0-7', mem_kb=32 * 1024 * 1024)],
        root_complexes=[fs.RootComplex('0000:00', children=[
            fs.endpoint('0000:00:00.0', 0x8086, 0x191f,
                        fs.CLASS_HOST_BRIDGE, iommu_group=1, link_gen=None,
                        reset_method=None),
            fs.endpoint('0000:00:02.0', 0x8086, 0x1912, 0x038000,
                        driver='i915', iommu_group=0, link_gen=None,
                        bars=[16 * fs.MiB, 256 * fs.MiB]),
            fs.RootPort('0000:00:01.0', device=0x1901, iommu_group=2,
                        children=[fs.nvidia_gpu(
                            '0000:01:00.0', model='gtx1660', iommu_group=2,
                            with_usb_c=True)]),
            fs.endpoint('0000:00:14.0', 0x8086, 0xa12f, fs.CLASS_USB_XHCI,
                        driver='xhci_hcd', iommu_group=3, link_gen=None,
                        bars=[64 * 1024]),
        ])])


@_machine({'0000:01:00.0': ISOLATED})
def consumer_intel_ampere():
    """RTX 3070 Ti (10de:2482) and its HDMI audio behind a CPU root port.

    Source: github.com/lexi-src/sGPUpt/issues/28: IOMMU group 1 = 00:01.0
    (8086:1901), 01:00.0 (10de:2482), 01:00.1 (10de:228b); group 2 =
    00:14.0 USB (8086:43ed) + 00:14.2 shared SRAM (8086:43ef), a
    multi-function PCH device in one group.

    Expected: 01:00.0 *isolated*, no switch, node 0 (``numa_node`` -1).
    """
    return fs.Host(
        numa_nodes=[fs.NumaNode(0, '0-15', mem_kb=32 * 1024 * 1024)],
        root_complexes=[fs.RootComplex('0000:00', children=[
            fs.RootPort('0000:00:01.0', device=0x1901, iommu_group=1,
                        link_gen=4, children=[fs.nvidia_gpu(
                            '0000:01:00.0', model='rtx3070ti',
                            iommu_group=1)]),
            fs.endpoint('0000:00:14.0', 0x8086, 0x43ed, fs.CLASS_USB_XHCI,
                        driver='xhci_hcd', iommu_group=2, link_gen=None,
                        bars=[64 * 1024]),
            fs.endpoint('0000:00:14.2', 0x8086, 0x43ef, 0x050000,
                        iommu_group=2, link_gen=None, bars=[16 * 1024]),
        ])])


# PLX switches: the captured tree's chassis, with GPUs.

_PLX_GPUS = (_addresses('0000:%s:00.0', ('1b', '1c', '1d', '1e'))
             + _addresses('0000:%s:00.0', ('3d', '3f', '40', '41')))


@_machine({gpu: ISOLATED for gpu in _PLX_GPUS},
          {gpu: '0000:18:00.0' if gpu < '0000:3' else '0000:3b:00.0'
           for gpu in _PLX_GPUS},
          {gpu: 0 for gpu in _PLX_GPUS})
def plx_8x_rtx2080ti():
    """8 RTX 2080 Ti, 4 functions each, behind two PLX PEX 9797 switches.

    Source: github.com/kata-containers/kata-containers/issues/6779:
    downstream ports 19:0c.0, 19:10.0, 19:14.0, 3c:10.0, 3c:14.0 alone in
    groups 27, 28, 29, 46, 47; GPUs 1b, 1c, 3d, 3f, 40 with their four
    functions (10de:1e04 VGA, 10f7 audio, 1ad6 USB, 1ad7 UCSI) in groups
    30, 31, 48, 49, 50. The PCIe layout (root ports 17:00.0 and 3a:00.0,
    upstream ports 18:00.0 and 3b:00.0) is the captured tree's
    (``tests/data/sysfs/32intel64-2p8co2t+8ve``), the same chassis. The
    other group numbers follow the kernel's numbering in bus order; the
    empty slots 19:04.0 and 3c:08.0 are what makes it consistent (chosen).

    Expected: all 8 *isolated*; 1b-1e under switch 18:00.0, 3d-41 under
    3b:00.0; NUMA 0 (both root ports on socket 0, as in the capture).
    """
    switches = []
    group = 23
    for root, upstream, ports, gpu_buses in (
            ('17', '18', ('04', '08', '0c', '10', '14'),
             (None, '1b', '1c', '1d', '1e')),
            ('3a', '3b', ('04', '08', '0c', '10', '14'),
             ('3d', None, '3f', '40', '41'))):
        downstream = []
        port_groups = range(group + 2, group + 7)
        gpu_group = group + 7
        for port, bus, port_group in zip(ports, gpu_buses, port_groups):
            below = []
            if bus is not None:
                below = fs.nvidia_gpu('0000:%s:00.0' % bus,
                                      model='rtx2080ti', with_usb_c=True,
                                      iommu_group=gpu_group)
                gpu_group += 1
            downstream.append(fs.DownstreamPort(
                '0000:%02x:%s.0' % (int(upstream, 16) + 1, port),
                iommu_group=port_group, children=below))
        switches.append(fs.RootComplex('0000:' + root, numa_node=0, children=[
            fs.RootPort('0000:%s:00.0' % root, iommu_group=group, children=[
                fs.Switch('0000:%s:00.0' % upstream, iommu_group=group + 1,
                          downstream=downstream)])]))
        group = 41
    return fs.Host(numa_nodes=[fs.NumaNode(0, '0-7,16-23'),
                               fs.NumaNode(1, '8-15,24-31')],
                   root_complexes=switches, kernel='old')


@_machine({'0000:03:00.0': SHARED})
def intel_pch_no_acs():
    """PCH root ports without ACS: the ports and what is below share a group.

    Source: lists.openwall.net/linux-kernel/2013/02/04/276 (Alex
    Williamson): group 7 = 00:1c.0, 00:1c.6, 03:00.0; group 10 = 00:1f.0
    (LPC), 00:1f.2 (SATA), 00:1f.3 (SMBus); link format
    ``../../../../devices/pci0000:00/0000:00:1c.6/0000:03:00.0``.

    Here 03:00.0 is a GPU (chosen: a GT 640, 10de:0fc1) and an Intel NIC
    (chosen: 02:00.0, 8086:10d3) sits below 00:1c.0; without ACS the
    kernel cannot split it from the GPU, so it is in group 7 too.

    Expected: 03:00.0 *shared* (the NIC is another endpoint).
    """
    return fs.Host(
        numa_nodes=[fs.NumaNode(0, '0-7')],
        root_complexes=[fs.RootComplex('0000:00', children=[
            fs.RootPort('0000:00:1c.0', device=0x1c10, iommu_group=7,
                        link_gen=1, link_width=1, children=[
                            fs.nic('0000:02:00.0', vendor=0x8086,
                                   device=0x10d3, cls=fs.CLASS_ETHERNET,
                                   driver='e1000e', iommu_group=7,
                                   link_gen=1, link_width=1)]),
            fs.RootPort('0000:00:1c.6', device=0x1c1c, iommu_group=7,
                        link_gen=2, link_width=16, children=[
                            fs.endpoint('0000:03:00.0', 0x10de, 0x0fc1,
                                        fs.CLASS_VGA, driver='vfio-pci',
                                        iommu_group=7, link_gen=2,
                                        bars=[16 * fs.MiB,
                                              256 * fs.MiB])]),
            fs.endpoint('0000:00:1f.0', 0x8086, 0x1c44, fs.CLASS_ISA_BRIDGE,
                        driver='lpc_ich', iommu_group=10, link_gen=None,
                        reset_method=None),
            fs.endpoint('0000:00:1f.2', 0x8086, 0x1c02, 0x010601,
                        driver='ahci', iommu_group=10, link_gen=None,
                        reset_method=None),
            fs.endpoint('0000:00:1f.3', 0x8086, 0x1c22, 0x0c0500,
                        iommu_group=10, link_gen=None, reset_method=None),
        ])])


# Servers without switches between GPUs.

_L40S = {'0000:01:00.0': 0, '0000:41:00.0': 0, '0000:81:00.0': 1,
         '0000:c1:00.0': 1}


@_machine({gpu: ISOLATED for gpu in _L40S}, numa=_L40S)
def pcie_4gpu_dual_socket_l40s():
    """4 L40S (10de:26b9), 2 per socket, each on its own host bridge.

    Source: github.com/warpem/miss-alignment/issues/106 (``nvidia-smi topo
    -m``): GPU0-GPU1 NODE, GPU2-GPU3 NODE, cross pairs SYS; GPU0,1 on NUMA
    0 (CPUs 0-95,192-287), GPU2,3 on NUMA 1 (96-191,288-383); two mlx5
    NICs PIX to each other (one dual-port card), NODE to GPU2/3.
    Chosen: addresses, groups numbered automatically (ACS everywhere).

    Expected: all *isolated*, no switch, NUMA 0, 0, 1, 1. Devstack's
    default fake topology.
    """
    complexes = [
        fs.RootComplex('0000:%02x' % (int(gpu[5:7], 16) - 1),
                       numa_node=node, children=[
                           fs.RootPort('0000:%02x:01.0'
                                       % (int(gpu[5:7], 16) - 1),
                                       link_gen=4, children=[
                                           fs.nvidia_gpu(gpu, 'l40s')])])
        for gpu, node in sorted(_L40S.items())]
    complexes.append(fs.RootComplex('0000:a0', numa_node=1, children=[
        fs.RootPort('0000:a0:01.0', link_gen=4, children=[
            fs.nic('0000:a1:00.0'), fs.nic('0000:a1:00.1')])]))
    return fs.Host(numa_nodes=[fs.NumaNode(0, '0-95,192-287'),
                               fs.NumaNode(1, '96-191,288-383')],
                   root_complexes=sorted(complexes,
                                         key=lambda rc: rc.domain_bus))


_RTX4090 = {'0000:%02x:00.0' % (0x11 + 0x10 * index): index // 4
            for index in range(8)}


@_machine({gpu: ISOLATED for gpu in _RTX4090}, numa=_RTX4090)
def pcie_8gpu_rtx4090():
    """8 RTX 4090 (10de:2684 + audio 22ba), no PCIe switch between any two.

    Source: github.com/NVIDIA/go-gpuallocator/issues/17 (``nvidia-smi
    topo -m``): every GPU pair SYS, even on one socket; GPU0-3 on NUMA 0
    (CPUs 0-55,112-167), GPU4-7 on NUMA 1 (56-111,168-223); NIC0/1 PHB
    to GPU6 (on GPU6's host bridge). Chosen: addresses, automatic groups.

    Expected: all *isolated* (GPU + its audio), no switch, NUMA 0 x4 then
    1 x4.
    """
    complexes = []
    for gpu, node in sorted(_RTX4090.items()):
        bus = int(gpu[5:7], 16) - 1
        children = [fs.RootPort('0000:%02x:01.0' % bus, link_gen=4,
                                children=[fs.nvidia_gpu(gpu, 'rtx4090')])]
        if gpu == '0000:71:00.0':
            children.append(fs.RootPort('0000:%02x:03.0' % bus, link_gen=4,
                                        children=[
                                            fs.nic('0000:72:00.0'),
                                            fs.nic('0000:72:00.1')]))
        complexes.append(fs.RootComplex('0000:%02x' % bus, numa_node=node,
                                        children=children))
    return fs.Host(numa_nodes=[fs.NumaNode(0, '0-55,112-167'),
                               fs.NumaNode(1, '56-111,168-223')],
                   root_complexes=complexes)


# Switch-based servers.

#: DGX A100: (host bridge, NUMA node, GPU buses, NIC buses) per switch.
_DGX = (('00', 3, ('07', '0f'), ('0c', '12')),
        ('40', 1, ('47', '4e'), ('4b', '54')),
        ('80', 7, ('87', '90'), ('8c', '95')),
        ('b0', 5, ('b7', 'bd'), ('ba', 'c1')))
_DGX_GPUS = {'0000:%s:00.0' % bus: (root, node)
             for root, node, gpus, _nics in _DGX for bus in gpus}


@_machine({gpu: ISOLATED for gpu in _DGX_GPUS},
          {gpu: '0000:%02x:00.0' % (int(root, 16) + 1)
           for gpu, (root, _node) in _DGX_GPUS.items()},
          {gpu: node for gpu, (_root, node) in _DGX_GPUS.items()})
def dgx_a100_like():
    """DGX A100-like: 8 A100 (10de:20b0) in pairs under 4 PCIe switches.

    Source: github.com/NVIDIA/nccl/issues/1505 (``nvidia-smi topo -m`` and
    NCCL's topology dump of a DGX A100 40GB): GPU0 0000:07:00.0 (10de:20b0,
    subsystem 10de:134f, class 0x0302, 16 GT/s x16) under a Broadcom
    1000:c010 switch; mlx5_0 0000:0c:00.0 (15b3:101b) under the same
    switch (PXB to GPU0/GPU1); GPU0,1 on NUMA 3 (CPUs 48-63,176-191),
    GPU2,3 on 1 (16-31,144-159), GPU4,5 on 7 (112-127,240-255); each pair
    shares 2 ConnectX-6 under its switch; 6 NVSwitches c4..c9:00.0
    (class 0x0680). Chosen: GPU6,7 on NUMA 5, the other bus numbers, one
    switch level (the real board has two), automatic groups.

    Expected: all 8 *isolated* (the switch ports have ACS), GPUs paired
    by switch 01:00.0, 41:00.0, 81:00.0, b1:00.0; NUMA 3,3,1,1,7,7,5,5.
    """
    complexes = []
    for root, node, gpus, nics in _DGX:
        base = int(root, 16)
        ports = []
        for slot, bus in enumerate((gpus[0], nics[0], gpus[1], nics[1])):
            below = (fs.nvidia_gpu('0000:%s:00.0' % bus, 'a100')
                     if bus in gpus else fs.nic('0000:%s:00.0' % bus))
            ports.append(fs.DownstreamPort(
                '0000:%02x:%02x.0' % (base + 2, 4 * slot), vendor=0x1000,
                device=0xc010, link_gen=4, children=[below]))
        switch = fs.Switch('0000:%02x:00.0' % (base + 1), vendor=0x1000,
                           device=0xc010, link_gen=4, downstream=ports)
        complexes.append(fs.RootComplex('0000:' + root, numa_node=node,
                                        children=[fs.RootPort(
                                            '0000:%s:01.1' % root,
                                            vendor=0x1022, device=0x1483,
                                            link_gen=4,
                                            children=[switch])]))
    nvswitches = [fs.DownstreamPort('0000:c3:%02x.0' % index, vendor=0x1000,
                                    device=0xc010, link_gen=4, children=[
                                        fs.endpoint('0000:%02x:00.0'
                                                    % (0xc4 + index),
                                                    0x10de, 0x1af1,
                                                    0x068000, link_gen=3,
                                                    bars=[32 * fs.MiB])])
                  for index in range(6)]
    complexes.append(fs.RootComplex('0000:c0', numa_node=5, children=[
        fs.RootPort('0000:c0:01.1', vendor=0x1022, device=0x1483,
                    link_gen=4, children=[fs.Switch(
                        '0000:c2:00.0', vendor=0x1000, device=0xc010,
                        link_gen=4, downstream=nvswitches)])]))
    nodes = [fs.NumaNode(n, '%d-%d,%d-%d' % (16 * n, 16 * n + 15,
                                             128 + 16 * n, 128 + 16 * n + 15),
                         distances=[10 if m == n else 12 if m // 4 == n // 4
                                    else 32 for m in range(8)])
             for n in range(8)]
    return fs.Host(numa_nodes=nodes, root_complexes=complexes)


def _h100_switch_host(gpus_per_switch, switches_per_node, with_nics):
    """H100 GPUs under PCIe switches on two sockets; see the callers."""
    complexes = []
    for node, root in ((0, 0x00), (1, 0x80)):
        ports = []
        bus = root + 1
        for index in range(switches_per_node):
            upstream, down_bus = bus, bus + 1
            downstream = []
            for slot in range(gpus_per_switch + (1 if with_nics else 0)):
                endpoint_bus = down_bus + 1 + slot
                if slot < gpus_per_switch:
                    below = fs.nvidia_gpu('0000:%02x:00.0' % endpoint_bus,
                                          'h100')
                else:
                    below = fs.nic('0000:%02x:00.0' % endpoint_bus,
                                   device=0x1021, link_gen=5)
                downstream.append(fs.DownstreamPort(
                    '0000:%02x:%02x.0' % (down_bus, slot), link_gen=5,
                    vendor=0x1000, device=0xc030, children=[below]))
            ports.append(fs.RootPort(
                '0000:%02x:%02x.0' % (root, index + 1), link_gen=5,
                children=[fs.Switch('0000:%02x:00.0' % upstream,
                                    vendor=0x1000, device=0xc030,
                                    link_gen=5, downstream=downstream)]))
            bus = down_bus + 1 + len(downstream)
        complexes.append(fs.RootComplex('0000:%02x' % root, numa_node=node,
                                        children=ports))
    return complexes


def _h100_expectations(layout):
    """``(verdicts, switches, numa)`` for a ``_h100_switch_host`` layout.

    :param layout: ``[(upstream, [gpu buses], node)]``.
    """
    switches, numa = {}, {}
    for upstream, buses, node in layout:
        for bus in buses:
            switches['0000:%s:00.0' % bus] = '0000:%s:00.0' % upstream
            numa['0000:%s:00.0' % bus] = node
    return switches, numa


_H100_8, _H100_8_NUMA = _h100_expectations([
    ('01', ('03', '04'), 0), ('05', ('07', '08'), 0),
    ('81', ('83', '84'), 1), ('85', ('87', '88'), 1)])


@_machine({gpu: ISOLATED for gpu in _H100_8}, _H100_8, _H100_8_NUMA)
def h100_8gpu_2numa_4switch():
    """8 H100 SXM (10de:2330): 2 NUMA nodes x 2 PCIe switches x 2 GPUs.

    Made up in the shape of an HGX H100 8-GPU board's PCIe side (GPUs in
    pairs under Gen5 PCIe switches, two switches per socket), simplified
    to one switch level and no NICs. Chosen: Broadcom ids 1000:c030 for
    the switch ports, every function in its own IOMMU group, GPUs bound
    to vfio-pci.

    Expected: all *isolated*; switch 01:00.0 holds 03,04; 05:00.0 holds
    07,08 (NUMA 0); 81:00.0 holds 83,84; 85:00.0 holds 87,88 (NUMA 1).
    """
    return fs.Host(numa_nodes=[fs.NumaNode(0, '0-31'),
                               fs.NumaNode(1, '32-63')],
                   root_complexes=_h100_switch_host(2, 2, False))


@_machine({gpu: UNKNOWN for gpu in _H100_8}, _H100_8, _H100_8_NUMA)
def h100_8gpu_iommu_off():
    """:func:`h100_8gpu_2numa_4switch` booted without an IOMMU.

    Expected: all 8 *unknown* (no ``/sys/kernel/iommu_groups``), same
    switches and NUMA nodes.
    """
    host = h100_8gpu_2numa_4switch()
    host.iommu = False
    return host


_H100_16, _H100_16_NUMA = _h100_expectations([
    ('01', ('03', '04', '05', '06'), 0), ('08', ('0a', '0b', '0c', '0d'), 0),
    ('81', ('83', '84', '85', '86'), 1), ('88', ('8a', '8b', '8c', '8d'), 1)])


@_machine({gpu: ISOLATED for gpu in _H100_16}, _H100_16, _H100_16_NUMA)
def sixteen_gpu_host():
    """16 H100 over 4 PCIe switches (4 GPUs + 1 NIC each), 2 NUMA nodes.

    A benchmark host (made up, in the shape of the others): 16 GPUs, 4
    NICs, 8 bridges per switch side; every function in its own group.

    Expected: all *isolated*; switches 01:00.0 (03-06) and 08:00.0
    (0a-0d) on NUMA 0, 81:00.0 (83-86) and 88:00.0 (8a-8d) on NUMA 1.
    """
    return fs.Host(numa_nodes=[fs.NumaNode(0, '0-31'),
                               fs.NumaNode(1, '32-63')],
                   root_complexes=_h100_switch_host(4, 2, True))


@_machine({})
def no_gpu_virtio_vm():
    """A KVM cloud VM: a host bridge and virtio devices, no IOMMU, no GPU.

    Source: this project's development VM (``/sys/bus/pci/devices``):
    00:00.0 8086:0d57 host bridge, virtio balloon, block, net, console,
    rng (1af4:1045, 1042, 1041, 1053, 1044) on bus 00, no
    ``/sys/kernel/iommu_groups``, one NUMA node with CPUs 0-1.

    Expected: no GPU; IOMMU groups not exposed.
    """
    return fs.Host(
        numa_nodes=[fs.NumaNode(0, '0-1', mem_kb=8 * 1024 * 1024)],
        root_complexes=[fs.RootComplex('0000:00', children=[
            fs.endpoint('0000:00:00.0', 0x8086, 0x0d57,
                        fs.CLASS_HOST_BRIDGE, link_gen=None,
                        reset_method=None, revision=0x00),
            fs.virtio('0000:00:01.0', 'balloon'),
            fs.virtio('0000:00:02.0', 'block'),
            fs.virtio('0000:00:03.0', 'net'),
            fs.virtio('0000:00:04.0', 'console'),
            fs.virtio('0000:00:05.0', 'rng'),
        ])],
        iommu=False)


@_machine({'0000:03:00.0': SHARED, '0000:04:00.0': SHARED},
          {'0000:03:00.0': '0000:01:00.0', '0000:04:00.0': '0000:01:00.0'},
          {'0000:03:00.0': 0, '0000:04:00.0': 0})
def two_gpus_one_group():
    """Two H100 behind a switch without ACS: one IOMMU group for both.

    Made up, the common failure: a switch whose downstream ports lack ACS
    puts everything below it in one group (group 30 here).

    Expected: both *shared* (each is the other's foreign endpoint), both
    under switch 01:00.0, NUMA 0.
    """
    ports = [fs.DownstreamPort('0000:02:%02x.0' % slot, iommu_group=30,
                               link_gen=5, children=[
                                   fs.nvidia_gpu(gpu, 'h100',
                                                 iommu_group=30)])
             for slot, gpu in ((0, '0000:03:00.0'), (1, '0000:04:00.0'))]
    return fs.Host(
        numa_nodes=[fs.NumaNode(0, '0-31')],
        root_complexes=[fs.RootComplex('0000:00', numa_node=0, children=[
            fs.RootPort('0000:00:01.0', link_gen=5, children=[
                fs.Switch('0000:01:00.0', iommu_group=30, link_gen=5,
                          downstream=ports)])])])


# The name the shared topology data and devstack's examples use.
for _table in (NAMED, EXPECTED, SWITCHES, NUMA):
    _table['dgx_a100_partial'] = _table['dgx_a100_like']


def main(argv=None):
    """``--topology NAME --output DIR``: write a named topology."""
    parser = argparse.ArgumentParser(
        prog='python -m gpu_passthrough_filter.testing.topologies',
        description='Write the fake sysfs tree of a named topology.')
    parser.add_argument('--topology', choices=sorted(NAMED),
                        required=True, help='Named machine to write.')
    parser.add_argument('--output', required=True,
                        help='Directory to write sys/ into (created).')
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    NAMED[args.topology]().write(args.output)
    print(args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
