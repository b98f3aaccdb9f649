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
"""Workloads: VM requests from the openb pod lists or a synthetic mix.

The openb pods are Kubernetes pods; passthrough gives whole GPUs, so:

* pods with ``num_gpu >= 1`` and ``gpu_milli == 1000`` become GPU VMs with
  ``num_gpu`` GPUs (``gpu_spec`` picks the accepted models);
* pods with ``num_gpu == 0`` become plain VMs;
* pods with ``gpu_milli < 1000`` (GPU sharing) are left out and counted.

:func:`atc_protocol` then follows the arrival protocol of Weng et al.
(ATC'23): shuffle with a seed, clone pods until the requested GPUs reach a
share of the fleet's GPUs (default 130%), arrivals only.

Pure module: no nova, oslo or openstacksdk import.
"""

import csv
import dataclasses
import math
import pathlib
import random
import typing

from gpu_passthrough_filter.sim import fleet as fleet_mod

#: Names of the bundled openb pod lists (``openb_pod_list_<name>.csv``).
OPENB_TRACES = ('default', 'multigpu20', 'multigpu50', 'gpuspec10', 'cpu050')

_REQUIRED_COLUMNS = ('name', 'cpu_milli', 'memory_mib', 'num_gpu',
                     'gpu_milli')


class TraceError(ValueError):
    """A trace file is malformed; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class VMRequest:
    """One VM to boot.

    :param name: unique name (pod name, ``#k`` appended to clones).
    :param vcpus: vCPUs of the flavor.
    :param memory_mb: RAM of the flavor in MiB.
    :param gpus: whole GPUs asked for (0: a plain VM).
    :param models: accepted GPU model names; empty means any model.
    """
    name: str
    vcpus: int
    memory_mb: int
    gpus: int = 0
    models: typing.Tuple[str, ...] = ()


@dataclasses.dataclass
class Trace:
    """The VM requests read from a pod list, and what was left out.

    :param requests: the VM requests, in file order.
    :param dropped_fractional: pods asking for part of a GPU.
    :param source: a short description for reports.
    """
    requests: typing.List[VMRequest]
    dropped_fractional: int = 0
    source: str = ''


def openb_trace_path(name):
    """Path of a bundled openb pod list, by short name or path."""
    if name in OPENB_TRACES:
        return fleet_mod.DATA_DIR / ('openb_pod_list_%s.csv' % name)
    path = pathlib.Path(name)
    if not path.exists():
        raise TraceError('%s: no such trace; bundled: %s, or a CSV path'
                         % (name, ', '.join(OPENB_TRACES)))
    return path


def _int_field(path, line, row, key):
    try:
        return int(float(row[key]))
    except (KeyError, TypeError, ValueError):
        raise TraceError('%s line %d: column %s is %r, not a number'
                         % (path, line, key, row.get(key)))


def _pod_request(path, line, row):
    """A VMRequest for one pod row, or None for a fractional-GPU pod."""
    num_gpu = _int_field(path, line, row, 'num_gpu')
    gpu_milli = _int_field(path, line, row, 'gpu_milli')
    if num_gpu < 0 or num_gpu > 64:
        raise TraceError('%s line %d: num_gpu %d is out of range'
                         % (path, line, num_gpu))
    if num_gpu and gpu_milli < 1000:
        return None
    models = tuple(sorted(filter(None, (row.get('gpu_spec') or '').split(
        '|'))))
    return VMRequest(
        name=row['name'],
        vcpus=max(1, math.ceil(_int_field(path, line, row, 'cpu_milli')
                               / 1000.0)),
        memory_mb=max(1, _int_field(path, line, row, 'memory_mib')),
        gpus=num_gpu, models=models)


def load_openb_trace(name='default'):
    """Read an openb pod list.

    :param name: a name of :data:`OPENB_TRACES` or a CSV path with at least
        the columns ``name, cpu_milli, memory_mib, num_gpu, gpu_milli``.
    :returns: a :class:`Trace`.
    :raises TraceError: naming the file and line of a malformed row.
    """
    path = openb_trace_path(name)
    requests, dropped = [], 0
    try:
        with open(path, newline='') as stream:
            reader = csv.DictReader(stream)
            missing = [column for column in _REQUIRED_COLUMNS
                       if column not in (reader.fieldnames or ())]
            if missing:
                raise TraceError('%s line 1: missing column(s) %s'
                                 % (path, ', '.join(missing)))
            for line, row in enumerate(reader, start=2):
                request = _pod_request(path, line, row)
                if request is None:
                    dropped += 1
                else:
                    requests.append(request)
    except OSError as error:
        raise TraceError('%s: cannot read: %s' % (path, error))
    return Trace(requests, dropped, source=pathlib.Path(path).name)


def scale_plain(requests, factor, seed=0):
    """The trace with its plain VMs scaled to ``factor`` times their count.

    A stress workload built from a bundled trace: the GPU requests stay as
    they are; the plain VMs are repeated (clones named ``<pod>~<k>``) and,
    for the fractional part, sampled with ``seed``, so their shapes stay
    the trace's own. ``factor`` 2 doubles the plain VMs, 0.5 keeps half.

    :param requests: the :class:`VMRequest` list of a trace.
    :param factor: plain VMs wanted per plain VM of the trace (>= 0).
    :param seed: seed of the sample.
    :returns: a new list: the GPU requests, then the plain ones.
    :raises TraceError: for a negative factor.
    """
    if not factor >= 0:
        raise TraceError('plain VM factor %r is below 0' % (factor,))
    gpu_requests = [request for request in requests if request.gpus]
    plain = [request for request in requests if not request.gpus]
    wanted = int(round(factor * len(plain)))
    whole, rest = divmod(wanted, len(plain)) if plain else (0, 0)
    scaled = []
    for copy in range(whole):
        scaled.extend(request if copy == 0 else dataclasses.replace(
            request, name='%s~%d' % (request.name, copy))
            for request in plain)
    sample = random.Random(seed).sample(plain, rest)
    scaled.extend(request if whole == 0 else dataclasses.replace(
        request, name='%s~%d' % (request.name, whole))
        for request in sample)
    return gpu_requests + scaled


def atc_protocol(requests, fleet_gpus, target=1.3, seed=0):
    """Arrivals as in the ATC'23 protocol: shuffle, clone up to a target.

    The pods are shuffled with ``seed``; the shuffled list is repeated
    (clones are named ``<pod>#<k>``) until the GPUs asked for reach
    ``target`` x ``fleet_gpus``. Plain VMs arrive in their trace proportion.

    :param requests: the :class:`VMRequest` list of a trace.
    :param fleet_gpus: GPUs of the fleet.
    :param target: arrived GPU demand as a share of ``fleet_gpus``.
    :param seed: shuffle seed.
    :returns: the list of arriving :class:`VMRequest`.
    """
    if not any(request.gpus for request in requests):
        raise TraceError('the trace has no whole-GPU request to replay')
    rng = random.Random(seed)
    order = list(requests)
    rng.shuffle(order)
    goal = target * fleet_gpus
    arrivals, asked, copy = [], 0, 0
    while asked < goal:
        for request in order:
            if asked >= goal:
                break
            if copy:
                request = dataclasses.replace(
                    request, name='%s#%d' % (request.name, copy))
            arrivals.append(request)
            asked += request.gpus
        copy += 1
    return arrivals


def smallest_first(arrivals):
    """The arrivals with the GPU requests in ascending GPU count.

    A cold-start stress: a new scheduler sees only small GPU guests for a
    long while, places them, and only then the large ones that need whole
    hosts. The plain VMs keep their places; the GPU requests are sorted
    among the places GPU requests held (stable, so equal sizes keep their
    order).

    :param arrivals: the :class:`VMRequest` list, e.g. from
        :func:`atc_protocol`.
    :returns: a new list of the same requests.
    """
    places = [index for index, request in enumerate(arrivals)
              if request.gpus]
    ordered = sorted((arrivals[index] for index in places),
                     key=lambda request: request.gpus)
    result = list(arrivals)
    for index, request in zip(places, ordered):
        result[index] = request
    return result


def parse_mix(text):
    """Parse a size mix ``"1:0.6,2:0.2,4:0.1,8:0.1"`` (GPUs: weight).

    :returns: a list of ``(gpus, weight)`` with weights summing to 1.
    :raises TraceError: on a malformed item.
    """
    mix = []
    for item in filter(None, (part.strip() for part in text.split(','))):
        try:
            gpus, weight = item.split(':')
            mix.append((int(gpus), float(weight)))
        except ValueError:
            raise TraceError('size mix item %r is not GPUS:WEIGHT' % item)
    total = sum(weight for _, weight in mix)
    if not mix or total <= 0 or any(w < 0 or g < 0 for g, w in mix):
        raise TraceError('size mix %r needs positive weights' % text)
    return [(gpus, weight / total) for gpus, weight in mix]


def synthetic(mix, count, seed=0, vcpus_per_gpu=8, memory_mb_per_gpu=49152):
    """``count`` VM requests whose GPU counts follow ``mix``.

    :param mix: ``(gpus, weight)`` pairs (see :func:`parse_mix`); 0 GPUs
        gives a plain VM of one GPU's shape.
    :param count: number of requests.
    :param seed: random seed.
    :param vcpus_per_gpu: vCPUs per GPU of a VM.
    :param memory_mb_per_gpu: RAM per GPU of a VM, in MiB.
    :returns: a list of :class:`VMRequest`.
    """
    rng = random.Random(seed)
    sizes = [gpus for gpus, _ in mix]
    weights = [weight for _, weight in mix]
    requests = []
    for index in range(count):
        gpus = rng.choices(sizes, weights)[0]
        scale = max(1, gpus)
        requests.append(VMRequest('synthetic-%05d' % index,
                                  vcpus_per_gpu * scale,
                                  memory_mb_per_gpu * scale, gpus))
    return requests


def typical_gpu_shape(requests):
    """Median vCPUs and RAM of the 1-GPU requests (for stranded GPUs).

    :returns: ``(vcpus, memory_mb)``; ``(1, 1)`` when no 1-GPU request.
    """
    singles = [request for request in requests if request.gpus == 1]
    if not singles:
        return 1, 1
    vcpus = sorted(request.vcpus for request in singles)
    memory = sorted(request.memory_mb for request in singles)
    return vcpus[len(vcpus) // 2], memory[len(memory) // 2]
