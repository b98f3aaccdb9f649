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

import collections

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


class LearnedShare(object):
    """The vCPUs and RAM per GPU of the recent GPU guests.

    The reserve a free GPU needs is what the next GPU guest will ask for
    beside it; a cloud's flavors say that better than a fixed number (12
    vCPUs per GPU on one cloud, 24 on the next), so the filter learns it
    from the requests it sees: total vCPUs and RAM of the last ``window``
    GPU guests over their GPUs (a GPU-weighted mean, so an 8-GPU guest
    counts as eight GPUs' worth).

    :param window: GPU requests remembered.
    """

    def __init__(self, window=1000):
        self._recent = collections.deque(maxlen=max(int(window), 1))
        self._gpus = self._vcpus = self._ram_mb = 0.0

    def observe(self, request):
        """Remember one request; guests without GPUs are ignored.

        :param request: the :class:`~.model.GPURequest`.
        """
        gpus = request.gpu_count
        if not request.wants_gpus or gpus <= 0:
            return
        if len(self._recent) == self._recent.maxlen:
            self._add(*self._recent[0], sign=-1.0)
        item = (float(gpus), max(float(request.vcpus or 0), 0.0),
                max(float(request.ram_mb or 0), 0.0))
        self._recent.append(item)
        self._add(*item)

    def _add(self, gpus, vcpus, ram_mb, sign=1.0):
        self._gpus += sign * gpus
        self._vcpus += sign * vcpus
        self._ram_mb += sign * ram_mb

    def per_gpu(self):
        """``(vcpus, ram_mb)`` per GPU; ``(0.0, 0.0)`` before a GPU guest."""
        if not self._recent or self._gpus <= 0:
            return 0.0, 0.0
        return (max(self._vcpus / self._gpus, 0.0),
                max(self._ram_mb / self._gpus, 0.0))


def reserve_per_gpu(explicit_vcpus, explicit_ram_mb, share, learned):
    """The reserve GPUPassthroughFilter keeps beside each free GPU.

    An explicit figure (operator's option above 0) wins; otherwise
    ``share`` of the learned vCPUs or RAM per GPU of the recent GPU guests
    (nothing before the first one: a cold scheduler keeps no reserve).

    :param explicit_vcpus: ``reserved_vcpus_per_free_gpu``.
    :param explicit_ram_mb: ``reserved_ram_mb_per_free_gpu``.
    :param share: ``reserve_share``, 0.0 to 1.0.
    :param learned: a :class:`LearnedShare`.
    :returns: ``(vcpus, ram_mb)`` per free GPU.
    """
    vcpus, ram_mb = learned.per_gpu()
    return (float(explicit_vcpus) if explicit_vcpus else share * vcpus,
            float(explicit_ram_mb) if explicit_ram_mb else share * ram_mb)
