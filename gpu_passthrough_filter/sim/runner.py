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
"""Replay arrivals through nova's real filter and weigher handlers.

For each request the loop does what ``SchedulerManager._schedule`` does for
one instance: Placement's candidates (:mod:`.placement`), then
``HostFilterHandler.get_filtered_objects`` with the enabled filters,
``HostWeightHandler.get_weighed_objects`` with the weighers, the first of
the ``host_subset_size`` best hosts (seeded choice), the provider mapping
of its first remaining candidate copied into the request groups, and
``HostState.consume_from_request``. The GPUs claimed are read back from the
host's pci_stats pools (one pool per device address).
"""

import collections
import copy
import dataclasses
import random
import time
import typing

from oslo_config import cfg
import yaml

from nova import filters as nova_base_filters
from nova.pci import request as pci_request
from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights

from gpu_passthrough_filter import recommended
from gpu_passthrough_filter.scheduler import request_log
from gpu_passthrough_filter.sim import nova_env
from gpu_passthrough_filter.sim import placement

CONF = cfg.CONF

#: Nova's default ``[filter_scheduler] enabled_filters`` (Nova 34) plus the
#: two filters a PCI passthrough cloud must add.
NOVA_PCI_FILTERS = ['ComputeFilter', 'ComputeCapabilitiesFilter',
                    'ImagePropertiesFilter', 'ServerGroupAntiAffinityFilter',
                    'ServerGroupAffinityFilter', 'PciPassthroughFilter',
                    'NUMATopologyFilter']
NOVA_AVAILABLE = ['nova.scheduler.filters.all_filters']
NOVA_WEIGHERS = ['nova.scheduler.weights.all_weighers']
PROJECT_AVAILABLE = NOVA_AVAILABLE + [
    'gpu_passthrough_filter.scheduler.all_filters']
PROJECT_WEIGHERS = NOVA_WEIGHERS + [
    'gpu_passthrough_filter.scheduler.all_weighers']
#: The project's recommended filters: GPUPassthroughFilter before nova's
#: PCI filters, so that they check only the candidates it keeps, and nova's
#: PCI filters in their fast form (same verdicts,
#: :mod:`gpu_passthrough_filter.scheduler.nova_filters`).
FAST_NOVA_FILTERS = recommended.FAST_NOVA_FILTERS
PROJECT_FILTERS = [
    FAST_NOVA_FILTERS.get(name, name) for name in
    NOVA_PCI_FILTERS[:NOVA_PCI_FILTERS.index('PciPassthroughFilter')] +
    ['GPUPassthroughFilter'] +
    NOVA_PCI_FILTERS[NOVA_PCI_FILTERS.index('PciPassthroughFilter'):]]
#: The project's recommended options (doc/source/admin/benchmarks.rst).
PROJECT_OPTIONS = dict(
    {'gpu_passthrough.weight_multiplier': 10.0,
     'gpu_passthrough.max_candidates_per_host': 1},
    **{'%s.%s' % key: value for key, value in
       recommended.scheduler_weight_overrides().items()})


#: Plain nova tuned to pack, the stronger anchor (legacy PCI), each option
#: from nova's own option help:
#:
#: * ``pci_weight_multiplier`` 10: "the PCI device affinity weigher computes
#:   a weighting based on the number of PCI devices on the host and the
#:   number requested": it keeps hosts with PCI devices for guests that ask
#:   for them; x10 so that it outweighs the spreading weighers;
#: * ``ram_weight_multiplier`` and ``cpu_weight_multiplier`` -1: "negative
#:   values will tend to fill up (stack) hosts as much as possible before
#:   scheduling to a less-used host";
#: * ``io_ops_weight_multiplier`` 0: its default (-1) "will tend to
#:   distribute the workload across more hosts", the opposite of packing.
NOVA_PACKING_OPTIONS = {
    'filter_scheduler.pci_weight_multiplier': 10.0,
    'filter_scheduler.ram_weight_multiplier': -1.0,
    'filter_scheduler.cpu_weight_multiplier': -1.0,
    'filter_scheduler.io_ops_weight_multiplier': 0.0,
}


def with_fast_nova_filters(policy):
    """``policy`` with nova's two PCI filters in their fast forms.

    The same verdicts (``tests/unit/scheduler/test_nova_filters.py``), so
    the same placements, in a fraction of the time: what makes a run over
    the whole openb fleet fit in an hour per policy.
    """
    enabled = [FAST_NOVA_FILTERS.get(name, name)
               for name in policy.enabled_filters]
    available = list(policy.available_filters)
    if enabled != list(policy.enabled_filters):
        available += [name for name in PROJECT_AVAILABLE
                      if name not in available]
    return dataclasses.replace(policy, enabled_filters=enabled,
                               available_filters=available)


class PolicyError(ValueError):
    """A policy file is malformed."""


@dataclasses.dataclass
class Policy:
    """One scheduler configuration to compare.

    :param name: short name for reports.
    :param enabled_filters: ``[filter_scheduler] enabled_filters``.
    :param available_filters: ``[filter_scheduler] available_filters``.
    :param weight_classes: ``[filter_scheduler] weight_classes``.
    :param options: more nova options, ``{"group.option": value}``, e.g.
        ``{"filter_scheduler.ram_weight_multiplier": -1.0}``.
    :param pci_in_placement: ``[filter_scheduler] pci_in_placement``.
    :param extra_specs: extra specs added to every GPU flavor.
    :param description: one line for reports.
    """
    name: str
    enabled_filters: typing.List[str] = dataclasses.field(
        default_factory=lambda: list(NOVA_PCI_FILTERS))
    available_filters: typing.List[str] = dataclasses.field(
        default_factory=lambda: list(NOVA_AVAILABLE))
    weight_classes: typing.List[str] = dataclasses.field(
        default_factory=lambda: list(NOVA_WEIGHERS))
    options: typing.Dict[str, typing.Any] = dataclasses.field(
        default_factory=dict)
    pci_in_placement: bool = False
    extra_specs: typing.Dict[str, str] = dataclasses.field(
        default_factory=dict)
    description: str = ''


def builtin_policies(numa_affinity='preferred'):
    """The four policies of the default comparison.

    :param numa_affinity: ``gpu_passthrough:numa_affinity`` of GPU flavors
        under the project's policy.
    """
    project_specs = {'gpu_passthrough:numa_affinity': numa_affinity}
    return [
        Policy('nova-default', description="nova's default filters + "
               'PciPassthroughFilter + NUMATopologyFilter, all weighers'),
        Policy('nova-pci-in-placement', pci_in_placement=True,
               description='the same with [filter_scheduler] '
               'pci_in_placement = True'),
        Policy('gpu-passthrough', pci_in_placement=True,
               enabled_filters=list(PROJECT_FILTERS),
               available_filters=list(PROJECT_AVAILABLE),
               weight_classes=list(PROJECT_WEIGHERS),
               options=dict(PROJECT_OPTIONS),
               extra_specs=project_specs,
               description='GPUPassthroughFilter + GPUPassthroughWeigher '
               'added to nova defaults, PCI in Placement'),
        Policy('nova-packing', options=dict(NOVA_PACKING_OPTIONS),
               description="plain nova tuned to pack GPU hosts: PCIWeigher "
               "x10, RAM and CPU weighers stacking, io_ops weigher off"),
    ]


def load_policies(path):
    """Policies from a YAML file: ``policies: [{name: ..., ...}]``.

    Keys are the fields of :class:`Policy`; ``base: nova-default`` (or
    another built-in name) starts from a built-in policy.
    """
    try:
        with open(path) as stream:
            document = yaml.safe_load(stream)
    except (OSError, yaml.YAMLError) as error:
        raise PolicyError('%s: %s' % (path, error))
    entries = (document or {}).get('policies')
    if not isinstance(entries, list) or not entries:
        raise PolicyError('%s: expected "policies:" with a list of policies'
                          % path)
    builtins = {policy.name: policy for policy in builtin_policies()}
    fields = {field.name for field in dataclasses.fields(Policy)}
    policies = []
    for entry in entries:
        entry = dict(entry or {})
        base = entry.pop('base', None)
        unknown = set(entry) - fields
        if unknown or 'name' not in entry or (base and base not in builtins):
            raise PolicyError('%s: policy %r: needs a name, known keys %s, '
                              'base one of %s' % (path, entry.get('name'),
                                                  sorted(fields),
                                                  sorted(builtins)))
        start = (dataclasses.asdict(builtins[base]) if base else {})
        start.update(entry)
        policies.append(Policy(**start))
    return policies


def _set_option(key, value):
    group, _, name = key.rpartition('.')
    if group == 'gpu_passthrough':
        _register_project_opts()
    CONF.set_override(name, value, group=group or None)


def _register_project_opts():
    from gpu_passthrough_filter import conf as project_conf
    try:
        project_conf.register_scheduler_opts(CONF)
    except cfg.DuplicateOptError:
        pass


def configure(policy, aliases):
    """Set nova's CONF for one policy (``CONF.set_override``)."""
    CONF.clear_override('alias', group='pci')
    fs = 'filter_scheduler'
    CONF.set_override('pci_in_placement', policy.pci_in_placement, fs)
    CONF.set_override('enabled_filters', policy.enabled_filters, fs)
    CONF.set_override('available_filters', policy.available_filters, fs)
    CONF.set_override('weight_classes', policy.weight_classes, fs)
    CONF.set_override('alias', aliases.alias_json(policy.pci_in_placement),
                      'pci')
    # NOTE: the simulated hosts never send heartbeats; ComputeFilter must
    # not see them as down however long the run takes.
    CONF.set_override('service_down_time', 2 ** 30)
    for key, value in policy.options.items():
        _set_option(key, value)
    # nova parses [pci] alias once per process (functools.cache).
    pci_request.get_alias_from_config.cache_clear()


def reset(policy):
    """Undo :func:`configure`'s overrides."""
    for name in ('pci_in_placement', 'enabled_filters', 'available_filters',
                 'weight_classes'):
        CONF.clear_override(name, 'filter_scheduler')
    CONF.clear_override('alias', 'pci')
    CONF.clear_override('service_down_time')
    for key in policy.options:
        group, _, name = key.rpartition('.')
        CONF.clear_override(name, group=group or None)
    pci_request.get_alias_from_config.cache_clear()


def load_filters(policy):
    """Instances of the enabled filters, as HostManager loads them."""
    handler = nova_filters.HostFilterHandler()
    classes = {cls.__name__: cls for cls in handler.get_matching_classes(
        policy.available_filters)}
    missing = [name for name in policy.enabled_filters
               if name not in classes]
    if missing:
        raise PolicyError('policy %s: filter(s) %s not found in %s'
                          % (policy.name, ', '.join(missing),
                             ', '.join(policy.available_filters)))
    return handler, [classes[name]() for name in policy.enabled_filters]


def missing_plugins(policy):
    """Why ``policy`` cannot run here (a plugin not installed), or ''."""
    try:
        _, filters = None, nova_filters.HostFilterHandler(
        ).get_matching_classes(policy.available_filters)
        nova_weights.HostWeightHandler().get_matching_classes(
            policy.weight_classes)
    except (ImportError, AttributeError) as error:
        # NOTE: oslo's ImportError text carries a whole traceback.
        return str(error).split(' (')[0]
    names = {cls.__name__ for cls in filters}
    missing = [name for name in policy.enabled_filters if name not in names]
    return ('filter(s) not found: %s' % ', '.join(missing)) if missing else ''


def load_weighers(policy):
    """Instances of the weighers, as HostManager loads them."""
    handler = nova_weights.HostWeightHandler()
    return handler, [cls() for cls in handler.get_matching_classes(
        policy.weight_classes)]


@dataclasses.dataclass
class Placement:
    """Where one request went.

    :param index: arrival index.
    :param request: the VM request.
    :param host: host name, or None when no host was found.
    :param gpus: PCI addresses claimed.
    :param seconds: decision time (Placement emulation excluded).
    :param hosts_seen: hosts handed to the filters.
    :param parts: seconds spent in each filter and weigher, by class name.
    :param placement_candidates: candidates Placement built for the
        request (before nova's ``max_placement_results``).
    :param placement_steps: Placement's work for the request
        (:attr:`.placement.Answer.steps`).
    :param failed_boots: boots that failed on a host before this one (or
        before giving up): GPUs whose IOMMU group another guest holds
        ("group is not viable"), each retried on the next alternate.
    """
    index: int
    request: typing.Any
    host: typing.Optional[str]
    gpus: typing.Tuple[str, ...] = ()
    seconds: float = 0.0
    hosts_seen: int = 0
    parts: typing.Dict[str, float] = dataclasses.field(default_factory=dict)
    placement_candidates: int = 0
    placement_steps: int = 0
    failed_boots: int = 0


@dataclasses.dataclass
class RunResult:
    """The outcome of one policy on one arrival sequence."""
    policy: Policy
    placements: typing.List[Placement]
    states: typing.Dict[str, typing.Any]
    seconds: float = 0.0


def _free_addresses(state):
    return {pool['address']: pool['count']
            for pool in (state.pci_stats.pools if state.pci_stats else ())}


def _claimed(before, after):
    claimed = []
    for address, count in before.items():
        if after.get(address, 0) < count:
            claimed.append(address)
    return tuple(sorted(claimed))


class _Worker(object):
    """One nova-scheduler worker: its own plugins and request log."""

    def __init__(self, policy, parts):
        self.filters = load_filters(policy)
        self.weighers = load_weighers(policy)
        own_log = request_log.RequestLog()
        for plugin in self.filters[1] + self.weighers[1]:
            if callable(getattr(plugin, 'use_log', None)):
                plugin.use_log(own_log)
        for plugin in self.filters[1]:
            _time_calls(plugin, _filter_method(plugin), parts)
        for plugin in self.weighers[1]:
            _time_calls(plugin, 'weigh_objects', parts)


_USAGE_FIELDS = ('vcpus_used', 'free_ram_mb', 'free_disk_mb',
                 'disk_mb_used', 'num_instances', 'num_io_ops')


def _usage(state):
    """What ``consume_from_request`` changes on a host state, copied."""
    return ({name: getattr(state, name) for name in _USAGE_FIELDS},
            copy.deepcopy(state.pci_stats), copy.deepcopy(state.numa_topology))


def _restore(state, saved):
    fields, pci_stats, numa_topology = saved
    for name, value in fields.items():
        setattr(state, name, value)
    state.pci_stats = pci_stats
    state.numa_topology = numa_topology


class Simulation(object):
    """One policy's scheduler over one fleet.

    :param fleet: the :class:`~.fleet.Fleet`.
    :param policy: the :class:`Policy`.
    :param aliases: the :class:`~.nova_env.AliasBook`.
    :param seed: seed of nova's host_subset_size choice.
    :param cpu_ratio: ``cpu_allocation_ratio`` of every host.
    :param ram_ratio: ``ram_allocation_ratio`` of every host.
    :param max_placement_results: ``[scheduler] max_placement_results``.
    :param placement_config: the :class:`.placement.PlacementConfig` of
        the modelled Placement service.
    :param fresh_host_states: build new host states from the compute
        records for every request and write each boot's usage back, as
        Nova 34 does (:class:`~.nova_env.ComputeRecords`); otherwise one
        set of host states lives through the run and each placement is
        consumed on it (cheaper, and the same placements while nothing
        reads per-request state such as in-flight I/O operations).
    :param workers: nova-scheduler workers; requests go to them in turn
        and each learns the request mix from its own requests only, as
        separate processes do.
    """

    def __init__(self, fleet, policy, aliases, seed=0, cpu_ratio=1.0,
                 ram_ratio=1.0, max_placement_results=1000,
                 placement_config=placement.RECOMMENDED,
                 fresh_host_states=False, workers=1):
        self.fleet = fleet
        self.policy = policy
        self.aliases = aliases
        self.random = random.Random(seed)
        self.max_results = max_placement_results
        configure(policy, aliases)
        self.parts = collections.Counter()
        self.workers = [_Worker(policy, self.parts)
                        for _ in range(max(1, workers))]
        self._use_worker(0)
        self.records = nova_env.ComputeRecords(
            fleet.hosts, aliases, policy.pci_in_placement, cpu_ratio,
            ram_ratio)
        self.fresh_host_states = fresh_host_states
        self.read_seconds = 0.0
        self.gpus = {(host.name, gpu.address): gpu
                     for host in fleet.hosts for gpu in host.gpus}
        self.shared_hosts = {host.name for host in fleet.hosts
                             if any(gpu.group_gpus > 1 for gpu in host.gpus)}
        self.group_owner = {}
        self._read_host_states()
        self.placement = placement.PlacementModel(
            placement_config, placement.provider_traits(fleet, aliases),
            seed=seed)

    def close(self):
        reset(self.policy)

    def _use_worker(self, number):
        worker = self.workers[number % len(self.workers)]
        self.filter_handler, self.filters = worker.filters
        self.weight_handler, self.weighers = worker.weighers

    def _read_host_states(self):
        self.states = self.records.host_states()
        self.by_uuid = {state.uuid: state for state in self.states}

    def _group_taken(self, host, gpus):
        return any((host, self.gpus[(host, address)].iommu_group)
                   in self.group_owner for address in gpus)

    def _take_groups(self, host, gpus, index):
        for address in gpus:
            group = self.gpus[(host, address)].iommu_group
            self.group_owner[(host, group)] = index

    def final_states(self):
        """The host states after the last placement, by host name."""
        if self.fresh_host_states:
            self._read_host_states()
        return {state.host: state for state in self.states}

    def _sorted_hosts(self, spec, hosts):
        filtered = self.filter_handler.get_filtered_objects(
            self.filters, hosts, spec, 0)
        if not filtered:
            return []
        weighed = self.weight_handler.get_weighed_objects(
            self.weighers, filtered, spec)
        weighed = [weighed_host.obj for weighed_host in weighed]
        subset = weighed[:max(1, CONF.filter_scheduler.host_subset_size)]
        chosen = self.random.choice(subset)
        weighed.remove(chosen)
        return [chosen] + weighed

    def schedule(self, index, request):
        """Place one request; returns a :class:`Placement`."""
        spec = nova_env.request_spec(request, index,
                                     self.policy.extra_specs)
        self._use_worker(index)
        if self.fresh_host_states:
            started = time.perf_counter()
            self._read_host_states()
            self.read_seconds = time.perf_counter() - started
        answer = self.placement.allocation_candidates(
            self.states, spec, self.policy.pci_in_placement,
            self.max_results)
        hosts = []
        for host_uuid, host_candidates in answer.candidates.items():
            state = self.by_uuid[host_uuid]
            state.allocation_candidates = copy.deepcopy(host_candidates)
            hosts.append(state)
        self.parts.clear()
        start = time.perf_counter()
        result = Placement(index, request, None, hosts_seen=len(hosts),
                           placement_candidates=answer.generated,
                           placement_steps=answer.steps)
        # NOTE: nova-conductor tries the selected host, then its
        # alternates, [scheduler] max_attempts hosts in all.
        attempts = max(1, CONF.scheduler.max_attempts)
        chosen = None
        for state in self._sorted_hosts(spec, hosts):
            if not state.allocation_candidates:
                continue
            if attempts == 0:
                break
            attempts -= 1
            mapping = state.allocation_candidates[0]['mappings']
            for group in spec.requested_resources:
                group.provider_uuids = mapping[group.requester_id]
            saved = (_usage(state) if state.host in self.shared_hosts
                     else None)
            before = _free_addresses(state)
            state.consume_from_request(spec)
            gpus = _claimed(before, _free_addresses(state))
            if saved is not None and self._group_taken(state.host, gpus):
                # The guest cannot start: its GPU's IOMMU group is open in
                # another guest. The compute aborts the claim.
                _restore(state, saved)
                result.failed_boots += 1
                continue
            self._take_groups(state.host, gpus, index)
            # NOTE: the build is over before the next request: nova counts
            # in-flight builds, resizes and snapshots as I/O operations
            # (IoOpsFilter, IoOpsWeigher), not the guests a host runs.
            state.num_io_ops = max(0, state.num_io_ops - 1)
            result.host = state.host
            result.gpus = gpus
            chosen = state
            break
        result.seconds = time.perf_counter() - start
        if self.fresh_host_states and chosen is not None:
            self.records.write_back(chosen)
        result.parts = dict(self.parts)
        for state in hosts:
            state.allocation_candidates = []
        return result


def _filter_method(plugin):
    # NOTE: nova's BaseFilter.filter_all is a generator calling _filter_one
    # per host; a filter that overrides it (GPUPassthroughFilter records
    # the request after filtering) does work outside _filter_one, so its
    # whole filter_all is timed, once per request.
    if type(plugin).filter_all is not nova_base_filters.BaseFilter.filter_all:
        return 'filter_all'
    return '_filter_one'


def _time_calls(plugin, method, totals):
    """Add the time of each ``plugin.method`` call to ``totals``.

    Wraps the bound method on the instance: nova's filter handler calls
    ``_filter_one`` once per host (``filter_all`` is a generator), the
    weight handler ``weigh_objects`` once per request.
    """
    bound = getattr(plugin, method)
    name = type(plugin).__name__

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return bound(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - start

    setattr(plugin, method, timed)


def run_policy(fleet, arrivals, policy, aliases, seed=0, progress=None,
               **options):
    """Replay ``arrivals`` under one policy.

    :param progress: callable ``progress(n)`` called after each request.
    :param options: passed to :class:`Simulation`.
    :returns: a :class:`RunResult`.
    """
    started = time.perf_counter()
    simulation = Simulation(fleet, policy, aliases, seed=seed, **options)
    try:
        placements = []
        for index, request in enumerate(arrivals):
            placements.append(simulation.schedule(index, request))
            if progress:
                progress(1)
    finally:
        simulation.close()
    return RunResult(policy, placements,
                     simulation.final_states(),
                     time.perf_counter() - started)
