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
"""A request's GPU demands: which GPUs they accept, and can they be met.

One demand per PCI alias of the flavor (:class:`~.model.GPUDemand`). The
matching of GPUs to demands is a tiny maximum flow, exact for any number
of aliases: :func:`assignable` (every GPU of a set goes to some demand)
and :func:`coverable` (the GPUs fill every demand) both read it.

Pure module: no nova, oslo or openstacksdk import.
"""


def active(request):
    """The request's demands that ask for at least one GPU."""
    return tuple(d for d in request.demands if d.count > 0)


def assignable(models, demands):
    """Whether GPUs of ``models`` can be shared out among ``demands``.

    Each GPU goes to one demand that accepts its model and no demand gets
    more than its count. A tiny max-flow (models -> demands), exact for
    any number of aliases.

    :param models: a mapping model -> number of GPUs of that model.
    :param demands: a sequence of :class:`~.model.GPUDemand`.
    :returns: True when every GPU can be assigned.
    """
    if len(demands) == 1:
        # The common case, one alias: no flow needed.
        demand = demands[0]
        return (sum(models.values()) <= demand.count and
                all(demand.accepts(m) for m in models))
    return _matched(models, demands) == sum(models.values())


def _matched(models, demands):
    """How many GPUs of ``models`` can go to ``demands`` at most.

    Kuhn's augmenting paths, one GPU at a time: a maximum matching of GPUs
    to demand slots, so both :func:`assignable` (every GPU placed) and
    :func:`coverable` (every slot filled) read it.
    """
    capacity = [d.count for d in demands]
    flow = {}
    matched = 0
    for gpu_model, count in models.items():
        for _ in range(count):
            if _augment(gpu_model, demands, capacity, flow, set()):
                matched += 1
    return matched


def _augment(gpu_model, demands, capacity, flow, seen):
    # NOTE: augmenting path search in the bipartite graph of models and
    # demands; flow[(model, i)] is how many GPUs of model demand i holds.
    for i, demand in enumerate(demands):
        if i in seen or not demand.accepts(gpu_model):
            continue
        seen.add(i)
        if capacity[i] > 0:
            capacity[i] -= 1
            flow[(gpu_model, i)] = flow.get((gpu_model, i), 0) + 1
            return True
        for (other, j), held in list(flow.items()):
            if j != i or held == 0 or other == gpu_model:
                continue
            if _augment(other, demands, capacity, flow, seen):
                flow[(other, i)] -= 1
                flow[(gpu_model, i)] = flow.get((gpu_model, i), 0) + 1
                return True
    return False


def describe_request(request):
    """``"4 GPUs of 10de:2330"`` style text for log messages.

    :param request: a :class:`~.model.GPURequest`.
    """
    parts = []
    for demand in active(request):
        models = '|'.join(sorted(demand.models)) or 'any model'
        plural = 'GPU' if demand.count == 1 else 'GPUs'
        parts.append('%d %s of %s' % (demand.count, plural, models))
    return ' + '.join(parts) or 'no GPU'


def coverable(models, demands):
    """Whether GPUs of ``models`` can fill every demand.

    The converse of :func:`assignable`.

    :param models: a mapping model -> number of GPUs available.
    :param demands: a sequence of :class:`~.model.GPUDemand`.
    """
    return _matched(models, demands) == sum(d.count for d in demands)
