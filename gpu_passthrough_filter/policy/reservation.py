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
"""The CPU and RAM a host keeps for its free GPUs.

Pure module: no nova, oslo or openstacksdk import.
"""

from gpu_passthrough_filter.policy import host_index


def keeps_gpu_reserve(host, request, vcpus_per_gpu=0.0, ram_mb_per_gpu=0.0):
    """Whether a guest without GPUs leaves the free GPUs their reserve.

    Rule: every usable free GPU of the host keeps ``vcpus_per_gpu`` vCPUs
    and ``ram_mb_per_gpu`` MiB of RAM for a GPU guest to come; a guest
    without GPUs passes only when the host still has that much after it.
    Hosts without free GPUs, unknown (None) free figures and a zero
    reserve always pass; guests with GPUs are not judged here.

    :param host: a :class:`~.model.HostView` or
        :class:`~.host_index.HostIndex`.
    :param request: the :class:`~.model.GPURequest`.
    :param vcpus_per_gpu: vCPUs kept per free GPU.
    :param ram_mb_per_gpu: RAM in MiB kept per free GPU.
    :returns: ``(ok, reason)``; the reason states the numbers.
    """
    idx = host_index.as_index(host)
    free_gpus = idx.free
    if request.wants_gpus or not free_gpus:
        return True, ''
    view = idx.host
    for what, wanted, free, per_gpu in (
            ('vCPUs', request.vcpus, view.free_vcpus, vcpus_per_gpu),
            ('MiB of RAM', request.ram_mb, view.free_ram_mb,
             ram_mb_per_gpu)):
        if not per_gpu or free is None:
            continue
        left = float(free) - float(wanted or 0)
        kept = free_gpus * float(per_gpu)
        if left < kept:
            return False, (
                'a guest without GPUs would leave %g %s for %d free GPUs, '
                'which keep %g' % (left, what, free_gpus, kept))
    return True, ''
