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
"""Is a GPU fit to be given to a guest now? From sysfs alone.

NVML cannot be asked: a passthrough GPU is bound to vfio-pci on the host.
What sysfs shows instead, per GPU:

* **unhealthy** (not offered): the device is gone; its config space reads
  all ones (fallen off the bus, stuck in reset); fatal PCIe AER errors were
  counted; it has no reset method (the next guest would inherit the last
  one's state); the host has no IOMMU groups;
* **degraded** (offered, with a reason to look): its link trained below
  its capability (a riser, a dirty contact: less bandwidth); correctable
  or non-fatal AER counters rose since the last reading; it is bound to a
  host driver (it works only with nova's ``managed`` rebinding);
* **ready** otherwise.

:func:`assess` judges one reading; :class:`HealthTracker` adds what needs
history: rising counters, and flap damping (a GPU that was unhealthy must
be healthy for ``settle_cycles`` readings in a row before it is offered
again).

Pure module: no nova, oslo or openstacksdk import.
"""

import dataclasses
import re
import typing

READY = 'ready'
DEGRADED = 'degraded'
UNHEALTHY = 'unhealthy'
_RANK = {READY: 0, DEGRADED: 1, UNHEALTHY: 2}

#: Drivers a passthrough GPU may be bound to without nova rebinding it.
PASSTHROUGH_DRIVERS = ('vfio-pci',)


@dataclasses.dataclass(frozen=True)
class Health:
    """The state of one GPU and why."""
    state: str = READY
    reasons: typing.Tuple[str, ...] = ()

    def worse(self, state, reason):
        """This health with one more finding."""
        if _RANK[state] < _RANK[self.state]:
            state = self.state
        return Health(state, self.reasons + (reason,))


def assess(gpu, inventory):
    """The :class:`Health` of ``gpu`` from this reading alone.

    :param gpu: a :class:`~.model.GPU` of ``inventory``.
    :param inventory: the :class:`~.model.HostInventory`.
    """
    health = Health()
    function = inventory.function(gpu.address)
    if function is None:
        return health.worse(UNHEALTHY, 'the device is gone')
    if function.config_readable is False:
        health = health.worse(UNHEALTHY, 'config space reads all ones (off '
                              'the bus or stuck in reset)')
    if function.aer_fatal:
        health = health.worse(UNHEALTHY, '%d fatal PCIe AER error(s)'
                              % function.aer_fatal)
    if function.reset_methods is not None and not function.reset_methods:
        health = health.worse(UNHEALTHY, 'no reset method: the next guest '
                              'would inherit the last one\'s state')
    if not inventory.iommu_enabled:
        health = health.worse(UNHEALTHY, 'IOMMU off')
    degraded_link = _link_below_capability(function)
    if degraded_link:
        health = health.worse(DEGRADED, degraded_link)
    if gpu.driver and gpu.driver not in PASSTHROUGH_DRIVERS:
        health = health.worse(DEGRADED, 'bound to %s: passthrough needs '
                              'vfio-pci or nova\'s managed rebinding'
                              % gpu.driver)
    return health


def _link_below_capability(function):
    current = link_speed_gts(function.cur_link_speed)
    best = link_speed_gts(function.max_link_speed)
    slower = current is not None and best is not None and current < best
    narrower = (function.cur_link_width is not None and
                function.max_link_width is not None and
                function.cur_link_width < function.max_link_width)
    if not (slower or narrower):
        return None
    return 'link at %s x%s, capable of %s x%s' % (
        function.cur_link_speed, function.cur_link_width,
        function.max_link_speed, function.max_link_width)


def link_speed_gts(text):
    """GT/s of a sysfs link speed (``"16.0 GT/s PCIe"``), None if none."""
    match = re.match(r'\s*([0-9.]+)', text or '')
    return float(match.group(1)) if match else None


class HealthTracker:
    """Health across readings: rising AER counters and flap damping.

    :param settle_cycles: readings in a row a GPU that was unhealthy must
        be healthy before it is offered again.
    """

    def __init__(self, settle_cycles=3):
        self.settle_cycles = max(int(settle_cycles), 1)
        self._counters = {}
        self._settling = {}

    def assess(self, inventory):
        """Add what history says to every GPU's health, in place.

        Starts from the health the reader set for this reading
        (:func:`assess`, in :func:`~.sysfs.read_inventory`).
        """
        for gpu in inventory.gpus:
            health = self._with_history(gpu, inventory, Health(
                gpu.health, tuple(gpu.health_reasons)))
            gpu.health, gpu.health_reasons = health.state, list(
                health.reasons)
        return inventory

    def _with_history(self, gpu, inventory, health):
        function = inventory.function(gpu.address)
        if function is not None:
            counters = (function.aer_nonfatal, function.aer_correctable)
            before = self._counters.get(gpu.address)
            self._counters[gpu.address] = counters
            if before is not None:
                for name, old, new in zip(('non-fatal', 'correctable'),
                                          before, counters):
                    if old is not None and new is not None and new > old:
                        health = health.worse(
                            DEGRADED, '%s AER errors rising (+%d)'
                            % (name, new - old))
        if health.state == UNHEALTHY:
            self._settling[gpu.address] = 0
            return health
        if gpu.address in self._settling:
            healthy_for = self._settling[gpu.address] + 1
            if healthy_for < self.settle_cycles:
                self._settling[gpu.address] = healthy_for
                return health.worse(UNHEALTHY, 'recovering: healthy for '
                                    '%d of %d readings' % (
                                        healthy_for, self.settle_cycles))
            del self._settling[gpu.address]
        return health
