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
"""What a cloud can still hold: capacity, explanations, fragmentation.

The operator's questions, answered with the scheduler's own policy core
(:mod:`.feasibility`): how many more guests of a flavor fit on a host
(:func:`guests_that_fit`: one after another, each taking the best GPU set
the filter would choose, and its vCPUs, RAM and disk), why one does or does
not fit (:func:`explain`), and how fragmented the free GPUs are
(:func:`free_blocks`, :func:`fleet_summary`).

Pure module: no nova, oslo or openstacksdk import.
"""

import dataclasses
import typing

from gpu_passthrough_filter.policy import feasibility
from gpu_passthrough_filter.policy import model

#: Block sizes of the fleet summary: guests of 1, 2, 4 and 8 GPUs.
BLOCK_SIZES = (1, 2, 4, 8)

#: Counting stops here (a host with room for more says "at least").
DEFAULT_LIMIT = 1000


@dataclasses.dataclass(frozen=True)
class Room:
    """One host's free resources beyond its GPUs.

    :param free: Placement resource class -> free amount (``VCPU``,
        ``MEMORY_MB``, ``DISK_GB``), as Placement would grant it.
    :param max_unit: resource class -> the most one guest may take.
    """
    free: typing.Mapping[str, float] = dataclasses.field(default_factory=dict)
    max_unit: typing.Mapping[str, float] = dataclasses.field(
        default_factory=dict)


@dataclasses.dataclass(frozen=True)
class CloudHost:
    """One compute host as the cloud's API shows it now.

    :param view: its :class:`~.model.HostView` (GPUs in use or held are
        not free).
    :param room: its :class:`Room`.
    :param held: GPUs held back from new guests (reserved in Placement:
        cordoned or unhealthy), among those not free.
    """
    view: model.HostView
    room: Room
    held: int = 0

    @property
    def name(self):
        return self.view.name


@dataclasses.dataclass(frozen=True)
class Capacity:
    """How many more guests fit, and what stops the next one.

    :param host: host name.
    :param guests: guests that fit, one after another.
    :param blocker: why one more does not (with numbers).
    """
    host: str
    guests: int
    blocker: str


def short_of(room, needs):
    """Why ``needs`` does not fit in ``room``, or None.

    :param room: a :class:`Room`.
    :param needs: resource class -> amount one guest takes.
    """
    for name, amount in sorted(needs.items()):
        if not amount:
            continue
        free = room.free.get(name)
        if free is not None and free < amount:
            return '%s: %s free, the guest needs %s' % (
                name, _num(free), _num(amount))
        most = room.max_unit.get(name)
        if most is not None and most < amount:
            return '%s: at most %s per guest, the guest needs %s' % (
                name, _num(most), _num(amount))
    return None


def _num(value):
    return ('%d' % value) if float(value).is_integer() else ('%.1f' % value)


def _taken(room, needs):
    free = dict(room.free)
    for name, amount in needs.items():
        if name in free:
            free[name] -= amount
    return Room(free, room.max_unit)


def _without(host, addresses):
    return dataclasses.replace(host, gpus=tuple(
        dataclasses.replace(gpu, free=False) if gpu.address in addresses
        else gpu for gpu in host.gpus))


def guests_that_fit(host, room, request, needs, limit=DEFAULT_LIMIT):
    """How many more guests of one flavor ``host`` can take now.

    Each guest takes the best GPU set of :func:`.feasibility.best_set`
    (the filter's choice) and ``needs`` from ``room``; the next one is
    judged on what is left, as the scheduler would judge it.

    :param host: a :class:`~.model.HostView` (its GPUs, free or not).
    :param room: the host's :class:`Room`.
    :param request: a :class:`~.model.GPURequest`.
    :param needs: resource class -> amount per guest.
    :param limit: stop counting there.
    :returns: a :class:`Capacity`.
    """
    guests = 0
    while guests < limit:
        why = short_of(room, needs)
        if why is None and request.wants_gpus:
            fit = feasibility.best_set(host, request)
            why = None if fit.ok else fit.reason
            if why is None:
                host = _without(host, fit.best.addresses)
        if why is not None:
            return Capacity(host.name, guests, why)
        room = _taken(room, needs)
        guests += 1
    return Capacity(host.name, guests, 'counted up to %d' % limit)


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why one guest can or cannot land on a host.

    :param host: host name.
    :param fits: True when it can.
    :param checks: ``(what, verdict)`` lines, in the order they were made.
    :param gpus: the addresses the filter would give it (best set).
    """
    host: str
    fits: bool
    checks: typing.Tuple[typing.Tuple[str, str], ...]
    gpus: typing.Tuple[str, ...] = ()


def explain(host, room, request, needs):
    """Every check for one guest on ``host``, with its numbers.

    :param host: a :class:`~.model.HostView`.
    :param room: its :class:`Room`.
    :param request: a :class:`~.model.GPURequest`.
    :param needs: resource class -> amount per guest.
    :returns: an :class:`Explanation`.
    """
    checks = []
    fits = True
    for name, amount in sorted(needs.items()):
        if not amount:
            continue
        free = room.free.get(name)
        if free is None:
            checks.append((name, 'not reported: not checked'))
            continue
        why = short_of(Room({name: free}, room.max_unit), {name: amount})
        fits = fits and why is None
        checks.append((name, why or 'ok: %s free, needs %s' % (
            _num(free), _num(amount))))
    gpus = ()
    if request.wants_gpus:
        free_gpus = [gpu for gpu in host.gpus if gpu.free]
        held = len(host.gpus) - len(free_gpus)
        checks.append(('GPUs', '%d free of %d (%d in use or held)' % (
            len(free_gpus), len(host.gpus), held)))
        fit = feasibility.best_set(host, request)
        fits = fits and fit.ok
        if fit.ok:
            gpus = tuple(fit.best.sorted_addresses())
            checks.append(('GPU set', 'ok: %s (%s)' % (
                ', '.join(gpus), fit.best.level.name.lower())))
        else:
            checks.append(('GPU set', 'none: %s' % fit.reason))
    return Explanation(host.name, fits, tuple(checks), gpus)


def free_blocks(host, size):
    """Disjoint free blocks of ``size`` GPUs, each on one NUMA node.

    As many ``size``-GPU guests with ``numa`` locality as the core places
    one after another (the best set first: within a switch when it can).

    CPU and RAM are not counted: this is the GPUs' own fragmentation.
    """
    request = model.GPURequest(
        demands=(model.GPUDemand(size),),
        locality=model.Locality.NUMA if size > 1 else model.Locality.ANY)
    return guests_that_fit(host, Room(), request, {}).guests


@dataclasses.dataclass(frozen=True)
class FleetSummary:
    """The fleet's free GPUs at a glance.

    :param free_gpus: free GPUs (not in use, not held).
    :param held_gpus: GPUs reserved (cordoned, unhealthy).
    :param blocks: size -> free aligned blocks of that size, fleet-wide.
    :param stranded_gpus: free GPUs on hosts that lack the vCPUs or RAM of
        the smallest GPU guest.
    :param fragmentation: the share of free GPUs that are in no free
        aligned block of the largest size, in [0, 1] (0: all free GPUs
        make whole blocks; 1: none does).
    :param largest: that largest block size.
    :param host_blocks: host name -> size -> its free aligned blocks.
    """
    free_gpus: int
    held_gpus: int
    blocks: typing.Mapping[int, int]
    stranded_gpus: int
    fragmentation: float
    largest: int
    host_blocks: typing.Mapping[str, typing.Mapping[int, int]] = (
        dataclasses.field(default_factory=dict))


def fleet_summary(hosts, smallest_guest, sizes=BLOCK_SIZES):
    """Sum :func:`free_blocks` and stranding over the fleet.

    :param hosts: :class:`CloudHost` objects.
    :param smallest_guest: resource class -> amount of the smallest GPU
        guest (what a free GPU needs beside it to be usable).
    :param sizes: block sizes.
    :returns: a :class:`FleetSummary`.
    """
    free = held = stranded = 0
    blocks = dict.fromkeys(sizes, 0)
    host_blocks = {}
    for host in hosts:
        host_free = sum(1 for gpu in host.view.gpus if gpu.free)
        free += host_free
        held += host.held
        if host_free and short_of(host.room, smallest_guest):
            stranded += host_free
        mine = host_blocks[host.name] = {
            size: free_blocks(host.view, size) for size in sizes}
        for size, count in mine.items():
            blocks[size] += count
    largest = max(sizes)
    in_blocks = blocks[largest] * largest
    fragmentation = 1.0 - in_blocks / free if free else 0.0
    return FleetSummary(free, held, blocks, stranded, fragmentation, largest,
                        host_blocks)
