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
"""Named host shapes for the policy tests, after real machines.

GPU addresses are ``0000:XX:00.0`` with ``XX`` = 0x10 + slot, so slot 0 is
``0000:10:00.0``; :func:`addr` spells them.
"""

from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter import tags

H100 = '10de:2330'
A100 = '10de:20b5'


def addr(slot):
    """PCI address of GPU slot ``slot`` in these shapes."""
    return '0000:%02x:00.0' % (0x10 + slot)


def gpu(slot, numa, switch, group=None, isolation=tags.ISOLATED,
        gpu_model=H100, free=True):
    """One GPU; ``group`` defaults to a group of its own (the slot)."""
    return model.GPUView(
        address=addr(slot), model=gpu_model, numa_node=numa,
        iommu_group=str(slot) if group is None else group,
        isolation=isolation, switch=switch, root=None, free=free)


def occupy(host, *slots):
    """The same host with the GPUs in ``slots`` given to guests."""
    busy = {addr(slot) for slot in slots}
    gpus = tuple(
        model.GPUView(g.address, g.model, g.numa_node, g.iommu_group,
                      g.isolation, g.switch, g.root, g.address not in busy)
        for g in host.gpus)
    return model.HostView(host.name, gpus, host.free_vcpus, host.free_ram_mb,
                          host.total_vcpus, host.total_ram_mb)


def with_resources(host, free_vcpus, free_ram_mb, total_vcpus=None,
                   total_ram_mb=None):
    """The same host with CPU/RAM figures."""
    return model.HostView(host.name, host.gpus, free_vcpus, free_ram_mb,
                          total_vcpus, total_ram_mb)


def dgx_8gpu(name='dgx'):
    """8 isolated H100s: 2 NUMA nodes x 2 PCIe switches x 2 GPUs.

    Slots 0-1 under sw0, 2-3 under sw1 (NUMA 0); 4-5 sw2, 6-7 sw3 (NUMA 1).
    """
    return model.HostView(name, tuple(
        gpu(slot, slot // 4, 'sw%d' % (slot // 2)) for slot in range(8)),
        total_vcpus=128, free_vcpus=128, total_ram_mb=1024 * 1024,
        free_ram_mb=1024 * 1024)


def dual_socket_4gpu(name='dual4'):
    """4 isolated GPUs on root ports, slots 0-1 on NUMA 0, 2-3 on NUMA 1."""
    return model.HostView(name, tuple(
        gpu(slot, slot // 2, None) for slot in range(4)))


def root_port_8gpu(name='rootport8'):
    """8 isolated GPUs, no PCIe switch: slots 0-3 NUMA 0, 4-7 NUMA 1."""
    return model.HostView(name, tuple(
        gpu(slot, slot // 4, None) for slot in range(8)))


def shared_pairs_8gpu(name='pairs8'):
    """The dgx layout, but each switch's two GPUs share an IOMMU group.

    Groups: 'g0' = slots 0-1, 'g1' = 2-3, 'g2' = 4-5, 'g3' = 6-7.
    """
    return model.HostView(name, tuple(
        gpu(slot, slot // 4, 'sw%d' % (slot // 2),
            group='g%d' % (slot // 2), isolation=tags.SHARED)
        for slot in range(8)))


def mixed_4gpu(name='mixed4'):
    """Slots 0-1.

    Isolated, NUMA 0, sw0; slots 2-3: shared group 'gp' on NUMA 1 under
    sw1.
    """
    return model.HostView(name, (
        gpu(0, 0, 'sw0'), gpu(1, 0, 'sw0'),
        gpu(2, 1, 'sw1', group='gp', isolation=tags.SHARED),
        gpu(3, 1, 'sw1', group='gp', isolation=tags.SHARED)))


def one_shared_pair(name='pair'):
    """Just one shared group 'gp' of two GPUs on NUMA 0 under sw0."""
    return model.HostView(name, (
        gpu(0, 0, 'sw0', group='gp', isolation=tags.SHARED),
        gpu(1, 0, 'sw0', group='gp', isolation=tags.SHARED)))


def one_isolated(name='single'):
    """One isolated GPU, NUMA 0, sw0."""
    return model.HostView(name, (gpu(0, 0, 'sw0'),))


def unknown_4gpu(name='unknown4'):
    """4 GPUs whose isolation the agent could not prove (IOMMU off).

    No IOMMU group, NUMA 0, one switch.
    """
    return model.HostView(name, tuple(
        model.GPUView(addr(slot), H100, 0, None, tags.UNKNOWN, 'sw0')
        for slot in range(4)))


def two_model_8gpu(name='twomodel'):
    """The dgx layout, A100s on NUMA 0 (slots 0-3), H100s on NUMA 1."""
    return model.HostView(name, tuple(
        gpu(slot, slot // 4, 'sw%d' % (slot // 2),
            gpu_model=A100 if slot < 4 else H100) for slot in range(8)))


def cpu_only(name='cpu'):
    """A host without GPUs, 64 vCPUs and 256 GiB free."""
    return model.HostView(name, (), free_vcpus=64, free_ram_mb=262144,
                          total_vcpus=64, total_ram_mb=262144)


def request(count, models=(H100,), isolation=model.Isolation.STRICT,
            numa=model.NumaAffinity.PREFERRED, locality=model.Locality.ANY,
            vcpus=8, ram_mb=65536):
    """A one-alias request of ``count`` GPUs."""
    demands = (model.GPUDemand(count, frozenset(models)),) if count else ()
    return model.GPURequest(demands, model.Isolation(isolation),
                            model.NumaAffinity(numa),
                            model.Locality(locality), vcpus, ram_mb)
