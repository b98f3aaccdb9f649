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
"""The workload profile and the expected fragmentation of a host.

A free GPU is worth something only while some GPU guest can still use it:
a host whose vCPUs or RAM are gone, or whose free GPUs are too few for the
guests that come, holds GPUs nobody can buy. Weng et al. ("Beware of
Fragmentation", USENIX ATC'23) measure this against the *workload*: the
expected fragmentation of a host is the number of its free GPUs that a
guest drawn from the recent request mix cannot use, and the scheduler
places each guest where that number grows least (fragmentation gradient
descent). With whole GPUs, the rule here fills the host with guests of each
shape of the mix and counts the free GPUs they leave unused (see
:func:`expected_fragmentation`).

:class:`WorkloadProfile` is the request mix, learned from the requests
the scheduler sees (a sliding window, so the profile follows the cloud's
flavors as they change); :func:`expected_fragmentation` and
:func:`fragmentation_delta` are the measure.

Pure module: no nova, oslo or openstacksdk import.
"""

import collections
import dataclasses
import typing


@dataclasses.dataclass(frozen=True)
class Shape:
    """What one GPU guest asks for, as far as fitting goes.

    :param gpus: number of GPUs.
    :param vcpus: vCPUs.
    :param ram_mb: RAM in MiB.
    :param models: accepted GPU models; empty means any.
    """
    gpus: int
    vcpus: float = 0.0
    ram_mb: float = 0.0
    models: typing.FrozenSet[str] = frozenset()


def shape_of(request):
    """The :class:`Shape` of a :class:`~.model.GPURequest`.

    Models are the union over the request's demands: enough for fitting,
    which only asks whether the host has that many GPUs a guest accepts.
    """
    models = frozenset()
    if all(demand.models for demand in request.demands):
        models = frozenset().union(*(d.models for d in request.demands))
    return Shape(request.gpu_count, float(request.vcpus or 0),
                 float(request.ram_mb or 0), models)


class WorkloadProfile(object):
    """The mix of the last ``window`` GPU guests.

    :param window: number of recent GPU requests remembered.
    """

    def __init__(self, window=1000):
        self.window = max(int(window), 1)
        self._recent = collections.deque()
        self._counts = collections.Counter()
        self._mix = None

    def __len__(self):
        return len(self._recent)

    def observe(self, shape):
        """Remember one GPU request's shape (guests without GPUs ignored).

        :param shape: a :class:`Shape`.
        """
        if shape.gpus <= 0:
            return
        self._recent.append(shape)
        self._counts[shape] += 1
        if len(self._recent) > self.window:
            oldest = self._recent.popleft()
            self._counts[oldest] -= 1
            if not self._counts[oldest]:
                del self._counts[oldest]
        self._mix = None

    def mix(self):
        """``((shape, share), ...)`` with shares summing to 1; () if empty.

        Computed once per change: every host of a request reads it.
        """
        if self._mix is None:
            total = float(len(self._recent))
            self._mix = tuple((shape, count / total)
                              for shape, count in self._counts.items())
        return self._mix


@dataclasses.dataclass(frozen=True)
class Resources:
    """What a host has free, as far as fitting goes.

    :param gpus_by_model: model -> free usable GPUs of that model.
    :param vcpus: free vCPUs, or None when not limited.
    :param ram_mb: free RAM in MiB, or None when not limited.
    """
    gpus_by_model: typing.Mapping[str, int]
    vcpus: typing.Optional[float] = None
    ram_mb: typing.Optional[float] = None

    @property
    def gpus(self):
        return sum(self.gpus_by_model.values())


def expected_fragmentation(free, mix):
    """Free GPUs that guests drawn from ``mix`` leave unused, in expectation.

    Rule: fill the host with guests of one shape of the mix: as many whole
    guests as its free GPUs hold, fewer (fractionally) when its free vCPUs
    or RAM run out first. The free GPUs they leave unused are that shape's
    fragments; the expectation weighs each shape by its share of the mix.
    A host without free GPUs has none; one whose free GPUs have no vCPUs
    left beside them has them all. Unlike the one-guest test of the ATC'23
    paper this sees a host whose vCPUs run out before its GPUs do: 8 free
    GPUs with 40 vCPUs are 4 unusable GPUs for guests of 1 GPU and 10
    vCPUs.

    :param free: the host's :class:`Resources`.
    :param mix: ``((shape, share), ...)`` from :meth:`WorkloadProfile.mix`.
    """
    gpus = free.gpus
    if gpus <= 0:
        return 0.0
    vcpus = None if free.vcpus is None else max(free.vcpus, 0.0)
    ram_mb = None if free.ram_mb is None else max(free.ram_mb, 0.0)
    accepted = {}
    total = 0
    # NOTE: one loop, no helper call per shape: every host of every
    # request runs this twice over the whole mix.
    for shape, share in mix:
        usable = gpus
        if shape.models:
            usable = accepted.get(shape.models)
            if usable is None:
                usable = accepted[shape.models] = sum(
                    count for model, count in free.gpus_by_model.items()
                    if model in shape.models)
        # Whole guests by GPUs (a 4-GPU guest needs 4), a fluid share by
        # vCPUs and RAM: the fluid part stands for the other shapes of the
        # mix that fill what whole guests of this shape leave over.
        guests = float(usable // shape.gpus)
        # NOTE: compared before dividing: a tiny request would make the
        # quotient overflow.
        if vcpus is not None and vcpus < shape.vcpus * guests:
            guests = vcpus / shape.vcpus
        if ram_mb is not None and ram_mb < shape.ram_mb * guests:
            guests = ram_mb / shape.ram_mb
        total += share * (gpus - shape.gpus * guests)
    return total


def after(free, vcpus=0.0, ram_mb=0.0, gpus_by_model=None):
    """``free`` less a guest's vCPUs, RAM and GPUs (model -> count)."""
    remaining = dict(free.gpus_by_model)
    for model, count in (gpus_by_model or {}).items():
        remaining[model] = max(remaining.get(model, 0) - count, 0)
    return Resources(
        remaining,
        None if free.vcpus is None else free.vcpus - float(vcpus or 0),
        None if free.ram_mb is None else free.ram_mb - float(ram_mb or 0))


def fragmentation_delta(before, after_placement, mix):
    """Growth of the expected fragmentation caused by one placement.

    Negative when the guest takes GPUs that the mix could not have used
    anyway (the best placements), positive when it leaves free GPUs that
    the mix can no longer use.
    """
    return (expected_fragmentation(after_placement, mix) -
            expected_fragmentation(before, mix))
